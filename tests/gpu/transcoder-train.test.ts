// The WGSL trainer learning a transcoder (store rows [x | y]: the input hook, then the target hook),
// against the TypeScript reference: every gradient (W_skip included; no b_dec on the input) against
// the reference's and against finite differences of the reference loss, one Adam step, and the
// store fit (each side scaled to E‖·‖² = its width, b_dec at the target's mean), on WebGPU.
import { describe, expect, it } from 'vitest';
import { SaeTrainer } from '../../src/lib/engine/gpu/sae-trainer';
import { storageFrom } from '../../src/lib/engine/gpu/buffers';
import { adamStep, backward, forward, normalizeDecoderRows, type SaeParams, type TrainShape } from '../../src/lib/engine/train/reference';
import { testDevice, rng } from './device';
import { maxAbsDiff } from '../numeric';

type Key = 'wEnc' | 'bEnc' | 'wDec' | 'bDec' | 'logThreshold' | 'wSkip';

describe('transcoder training on WebGPU', () => {
	for (const [s, deadEvery, scaleIn, scaleOut] of [
		[{ d: 6, n: 10, dOut: 4, arch: 'relu', k: 0, l1: 0.05, skip: true }, 0, 1, 1],
		[{ d: 6, n: 10, dOut: 4, arch: 'topk', k: 3, l1: 0, auxK: 3, auxCoeff: 0.5 }, 2, 0.5, 2],
		[{ d: 6, n: 10, dOut: 4, arch: 'jumprelu', k: 0, l1: 0, l0: 0.1, bandwidth: 0.3, skip: true }, 0, 0.5, 2],
		[{ d: 70, n: 24, dOut: 66, arch: 'relu', k: 0, l1: 0.01, skip: true }, 0, 1, 0.5]
	] as [TrainShape, number, number, number][]) {
		const m = s.dOut!;
		const dead = deadEvery > 0 ? Uint8Array.from({ length: s.n }, (_, j) => (j % deadEvery === 1 ? 1 : 0)) : undefined;
		it(`${s.arch} ${s.d} → ${s.n} → ${m}${s.skip ? ' with W_skip' : ''}${dead ? ' with AuxK' : ''}, read at ×${scaleIn}/×${scaleOut}: gradients match the reference and its finite differences, and one Adam step`, async () => {
			const device = await testDevice();
			const r = rng(13);
			const B = 5;
			const storeRows = 9;
			const stride = s.d + m;
			const data = Float32Array.from({ length: storeRows * stride }, () => r());
			const rows = Uint32Array.from([3, 0, 8, 5, 1]);
			// The batch as the reference takes it: x and y apart, scaled.
			const x = new Float32Array(B * s.d);
			const y = new Float32Array(B * m);
			rows.forEach((row, b) => {
				for (let i = 0; i < s.d; i++) x[b * s.d + i] = data[row * stride + i] * scaleIn;
				for (let i = 0; i < m; i++) y[b * m + i] = data[row * stride + s.d + i] * scaleOut;
			});
			const u = (len: number, sc: number) => Float32Array.from({ length: len }, () => r() * sc);
			const p: SaeParams = { wEnc: u(s.d * s.n, 0.6), bEnc: u(s.n, 0.1), wDec: u(s.n * m, 0.6), bDec: u(m, 0.2) };
			if (s.skip) p.wSkip = u(m * s.d, 0.3);
			if (s.arch === 'jumprelu') p.logThreshold = Float32Array.from({ length: s.n }, () => Math.log(0.05 + 0.1 * (r() + 1)));
			const trainer = await SaeTrainer.create(device, s, B, p);
			trainer.setStore(storageFrom(device, data, 'test.store'), storeRows);
			trainer.setScale(scaleIn, scaleOut);
			if (dead) {
				trainer.setDeadAfter(1000);
				trainer.setSinceFired(Uint32Array.from(dead, (v) => (v ? 5000 : 0)));
			}
			trainer.gradients(rows);
			const gpu = await trainer.readGradients();
			const base = forward(p, s, x, B, false, dead, undefined, y);
			if (dead) expect(base.aux, 'the AuxK term is in play').toBeGreaterThan(0);
			const ref = backward(p, s, x, B, base, dead);
			const keys: Key[] = ['wEnc', 'bEnc', 'wDec', 'bDec', ...(s.skip ? (['wSkip'] as const) : [])];
			for (const key of keys) expect(maxAbsDiff(gpu[key]!, ref[key]!), key).toBeLessThan(1e-4);
			if (s.arch === 'jumprelu') expect(maxAbsDiff(gpu.logThreshold!, ref.logThreshold!), 'logThreshold').toBeLessThan(1e-4);
			const metrics = await trainer.metrics();
			expect(Math.abs(metrics.mse - base.mse / scaleOut ** 2), 'MSE in the target hook’s units').toBeLessThan(1e-4 * (1 + base.mse));

			// Finite differences of the reference loss (sampled entries), held where a gate would flip.
			const precise = forward(p, s, x, B, true, dead, undefined, y);
			const target = precise.err.map((e) => -e);
			const gate = (f: ReturnType<typeof forward>) =>
				f.acts.map((a) => (a > 0 ? 1 : 0)).join('') +
				f.auxSel.map((sel, b) => [...sel].map((j, q) => `${j}:${f.auxActs[b][q] > 0}`)).join('|');
			const baseGate = gate(precise);
			const h = s.d > 10 ? 3e-4 : 1e-3;
			let checked = 0;
			for (const key of keys) {
				const w = p[key]!;
				const idx = w.length <= 60 ? [...w.keys()] : Array.from({ length: 25 }, () => Math.floor(((r() + 1) / 2) * w.length));
				for (const i of idx) {
					const old = w[i];
					w[i] = old + h;
					const up = w[i];
					const fUp = forward(p, s, x, B, true, dead, target, y);
					w[i] = old - h;
					const down = w[i];
					const fDown = forward(p, s, x, B, true, dead, target, y);
					w[i] = old;
					if (gate(fUp) !== baseGate || gate(fDown) !== baseGate) continue;
					checked++;
					const fd = (fUp.loss - fDown.loss) / (up - down);
					expect(Math.abs(fd - gpu[key]![i]), `${key}[${i}]: finite difference ${fd}, GPU ${gpu[key]![i]}`).toBeLessThan(
						2e-3 + 2e-2 * Math.abs(fd)
					);
				}
			}
			expect(checked).toBeGreaterThan(50);

			trainer.adam(1e-2);
			const all: Key[] = [...keys, ...(s.arch === 'jumprelu' ? (['logThreshold'] as const) : [])];
			const want = Object.fromEntries(all.map((key) => [key, p[key]!.slice()])) as unknown as SaeParams;
			const zeros = () => Object.fromEntries(all.map((key) => [key, new Float32Array(p[key]!.length)])) as unknown as SaeParams;
			adamStep(want, ref, { m: zeros(), v: zeros(), t: 0 }, 1e-2);
			if (s.arch !== 'relu') normalizeDecoderRows(want, s);
			const after = await trainer.readParams();
			for (const key of all) expect(maxAbsDiff(after[key]!, want[key]!), `adam ${key}`).toBeLessThan(1e-4);

			// A new run's fit: each side to E‖·‖² = its width, b_dec ← the target's mean (scaled).
			const scale = await trainer.fitToStore();
			const meanSq = (from: number, to: number) => {
				let a = 0;
				for (let t = 0; t < storeRows; t++) for (let i = from; i < to; i++) a += data[t * stride + i] ** 2;
				return a / storeRows;
			};
			const sIn = Math.sqrt(s.d / meanSq(0, s.d));
			const sOut = Math.sqrt(m / meanSq(s.d, stride));
			expect(Math.abs(scale - sIn) / sIn).toBeLessThan(1e-5);
			expect(Math.abs(trainer.scales.out - sOut) / sOut).toBeLessThan(1e-5);
			const mean = Float32Array.from({ length: m }, (_, i) => {
				let a = 0;
				for (let t = 0; t < storeRows; t++) a += data[t * stride + s.d + i];
				return (a / storeRows) * sOut;
			});
			expect(maxAbsDiff((await trainer.readParams()).bDec, mean)).toBeLessThan(1e-5);
			trainer.destroy();
		});
	}
});

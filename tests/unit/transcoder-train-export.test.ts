// A transcoder as the trainer holds it (parameters for inputs × s_in and targets × s_out) exported as
// SAELens files and read back by the loader: on the raw hooks it predicts what the training forward
// (train/reference.ts) predicted, unscaled; and the reference's transcoder gradients (target ≠ input,
// W_skip, no b_dec on the input) against finite differences of its own loss in float64.
import { describe, expect, it } from 'vitest';
import { backward, forward, initParams, type SaeParams, type TrainShape } from '../../src/lib/engine/train/reference';
import { transcoderToSaeLens } from '../../src/lib/engine/train/transcoder-export';
import { readSaeFiles } from '../../src/lib/engine/sae/load';
import { Transcoder } from '../../src/lib/engine/sae/transcoder';
import { seededRandom } from '../../src/lib/engine/sample/prng';
import { maxAbs, maxAbsDiff } from '../numeric';

const d = 5;
const m = 3;
const n = 8;
const B = 4;

function setup(arch: TrainShape['arch'], skip: boolean, seed: number) {
	const r = seededRandom(seed);
	const u = (len: number, s = 1) => Float32Array.from({ length: len }, () => (r() * 2 - 1) * s);
	const s: TrainShape = { d, n, arch, k: 3, l1: arch === 'relu' ? 0.05 : 0, l0: 0.1, bandwidth: 0.3, dOut: m, skip };
	const p: SaeParams = initParams(s, r, u(m, 0.2));
	p.bEnc.set(u(n, 0.2));
	if (skip) p.wSkip = u(m * d, 0.3);
	if (arch === 'jumprelu') p.logThreshold = Float32Array.from({ length: n }, () => Math.log(0.05 + 0.2 * r()));
	return { s, p, x: u(B * d, 1.5), y: u(B * m, 1) };
}

describe('transcoder training reference and export', () => {
	for (const [arch, skip] of [
		['relu', true],
		['jumprelu', true],
		['topk', false]
	] as const)
		it(`${arch}${skip ? ' with W_skip' : ''}: the exported SAELens files predict the unscaled target the training forward predicts`, () => {
			const { s, p, x, y } = setup(arch, skip, 3);
			const sIn = 0.7;
			const sOut = 2.5;
			const xs = x.map((v) => v * sIn);
			const ys = y.map((v) => v * sOut);
			const f = forward(p, s, xs, B, true, undefined, undefined, ys);
			const want = Float32Array.from(f.err, (e, i) => (e + ys[i]) / sOut);
			const { cfgJson, safetensors } = transcoderToSaeLens(
				p,
				s,
				{ in: sIn, out: sOut },
				{ hookName: 'blocks.1.hook_mlp_in', hookNameOut: 'blocks.1.hook_mlp_out' }
			);
			const cfg = JSON.parse(cfgJson);
			expect([cfg.d_out, cfg.metadata.hook_name_out, cfg.normalize_activations]).toEqual([m, 'blocks.1.hook_mlp_out', 'none']);
			expect(cfg.architecture).toBe({ relu: 'skip_transcoder', jumprelu: 'jumprelu_skip_transcoder', topk: 'topk_transcoder' }[arch]);
			const read = readSaeFiles([
				{ name: 'cfg.json', buffer: new TextEncoder().encode(cfgJson).buffer as ArrayBuffer },
				{ name: 'sae_weights.safetensors', buffer: safetensors.slice().buffer as ArrayBuffer }
			]);
			const got = Transcoder.fromSae(read.cfg, read.weights).forward(x, B).out;
			expect(maxAbsDiff(got, want)).toBeLessThan(1e-4 * Math.max(1, maxAbs(want)));
		});

	for (const [arch, skip] of [
		['relu', true],
		['topk', false],
		['jumprelu', true]
	] as const)
		it(`${arch}${skip ? ' with W_skip' : ''}: every gradient of the reference matches finite differences of its loss`, () => {
			const { s, p, x, y } = setup(arch, skip, 7);
			const f = forward(p, s, x, B, true, undefined, undefined, y);
			const g = backward(p, s, x, B, f);
			expect(g.bDec.length).toBe(m);
			const gate = (o: ReturnType<typeof forward>) => o.acts.map((a) => (a > 0 ? 1 : 0)).join('');
			const h = 1e-3;
			let checked = 0;
			for (const key of ['wEnc', 'bEnc', 'wDec', 'bDec', ...(skip ? (['wSkip'] as const) : [])] as const) {
				const w = p[key]!;
				for (let i = 0; i < w.length; i++) {
					const old = w[i];
					w[i] = old + h;
					const up = w[i];
					const fUp = forward(p, s, x, B, true, undefined, undefined, y);
					w[i] = old - h;
					const down = w[i];
					const fDown = forward(p, s, x, B, true, undefined, undefined, y);
					w[i] = old;
					if (gate(fUp) !== gate(f) || gate(fDown) !== gate(f)) continue; // a kink: no derivative there
					// JumpReLU's L0 term is piecewise constant in the weights: its true derivative is 0 off the kinks.
					const fd = (fUp.loss - fDown.loss) / (up - down);
					expect(Math.abs(fd - g[key]![i]), `${key}[${i}] fd ${fd} vs ${g[key]![i]}`).toBeLessThan(2e-3 + 1e-2 * Math.abs(fd));
					checked++;
				}
			}
			expect(checked).toBeGreaterThan(60);
		});
});

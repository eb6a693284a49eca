import { it } from 'vitest';
import { SaeTrainer } from '../../../src/lib/engine/gpu/sae-trainer';
import { storageFrom } from '../../../src/lib/engine/gpu/buffers';
import { initParams, type TrainShape } from '../../../src/lib/engine/train/reference';
import { testDevice, rng } from '../device';

it('explore jumprelu', async () => {
	const device = await testDevice();
	for (const [th0, l0, bw] of [[0.001, 0.05, 0.05], [0.3, 0.05, 0.05], [0.3, 0.2, 0.1], [1, 0.1, 0.1]]) {
		const r = rng(5);
		const d = 32, N = 48, rowsN = 8192, active = 3;
		const truth = Array.from({ length: N }, () => { const v = Float32Array.from({ length: d }, () => r()); const norm = Math.hypot(...v); return v.map((x) => x / norm); });
		const data = new Float32Array(rowsN * d);
		for (let t = 0; t < rowsN; t++) for (let a = 0; a < active; a++) { const f = Math.floor(((r() + 1) / 2) * N); const mag = 1 + r() * 0.5; for (let i = 0; i < d; i++) data[t * d + i] += mag * truth[f][i] + 0.003 * r(); }
		const s: TrainShape = { d, n: 96, arch: 'jumprelu', k: 0, l1: 0, l0, bandwidth: bw };
		const B = 128;
		const params = initParams(s, () => (r() + 1) / 2, new Float32Array(d));
		params.logThreshold!.fill(Math.log(th0));
		const trainer = await SaeTrainer.create(device, s, B, params);
		trainer.setStore(storageFrom(device, data, 'synthetic'), rowsN);
		const scale = await trainer.measureScale();
		trainer.setScale(scale);
		trainer.initBDecFromStore();
		const out: string[] = [];
		for (let step = 0; step < 600; step++) {
			const rows = Uint32Array.from({ length: B }, () => Math.floor(((r() + 1) / 2) * rowsN));
			trainer.step(rows, step < 60 ? (4e-3 * (step + 1)) / 60 : 4e-3);
			if (step % 100 === 99) { const m = await trainer.metrics(); out.push(`${step + 1}: EV ${m.explainedVariance.toFixed(3)} L0 ${m.l0.toFixed(1)}`); }
		}
		const learned = (await trainer.readParams()).wDec;
		let sum = 0;
		for (const v of truth) { let best = -1; for (let j = 0; j < s.n; j++) { let dot = 0; for (let i = 0; i < d; i++) dot += v[i] * learned[j * d + i]; best = Math.max(best, dot); } sum += best; }
		console.log(`th0=${th0} l0=${l0} bw=${bw} scale=${scale.toFixed(2)}: ${out.join(' | ')} MMCS ${(sum / N).toFixed(3)}`);
		trainer.destroy();
	}
}, 900_000);

// The steer kernel (shaders/steer.wgsl) on small shapes against the methods as Neuronpedia writes
// them, restated here from interp-engine's interp_engine/steer.py (what Neuronpedia's inference
// server calls for SIMPLE_ADDITIVE, ORTHOGONAL_DECOMP and PROJECTION_CAP), with Loupe's clamp, each
// entry applied to the row as the ones before it left it and only on the rows its window covers.
// d = 300 is past one workgroup's 256 threads (each thread owns two elements or one).
import { describe, expect, it } from 'vitest';
import { readBuffer, storageFrom } from '../../src/lib/engine/gpu/buffers';
import { SteerKernel, type SteerRow } from '../../src/lib/engine/gpu/steer';
import { rng, testDevice } from './device';
import { maxAbs, maxAbsDiff } from '../numeric';

const T = 6;
const D = 300;
const DSAE = 5;

/** Neuronpedia's delta for one row (interp_engine/steer.py): additive coeff·v; orthogonal (c − 1)(h·û)û; projection cap (min(h·û, max) − h·û)û. */
function delta(mode: SteerRow['mode'], c: number, h: Float64Array, v: Float32Array, act: number): Float64Array {
	if (mode === 'add') return Float64Array.from(v, (x) => c * x);
	if (mode === 'clamp') return Float64Array.from(v, (x) => (c - act) * x); // Loupe's: the SAE activation set to c
	const norm = Math.sqrt(v.reduce((a, x) => a + x * x, 0));
	if (norm === 0) return new Float64Array(v.length);
	const u = Float64Array.from(v, (x) => x / norm);
	const proj = h.reduce((a, x, i) => a + x * u[i], 0);
	const along = mode === 'orthogonal' ? (c - 1) * proj : Math.min(proj, c) - proj;
	return u.map((x) => along * x);
}

describe('steer kernel: methods and row windows', () => {
	it("matches Neuronpedia's formulas entry by entry, on exactly the rows each window names", async () => {
		const device = await testDevice();
		const r = rng(7);
		const resid = Float32Array.from({ length: T * D }, () => r());
		const acts = Float32Array.from({ length: T * DSAE }, () => r() + 1);
		const specs: SteerRow[] = [
			{ mode: 'add', feature: 0, value: 1.5, rows: { lo: 1, hi: 4, list: [] } },
			{ mode: 'clamp', feature: 2, value: 0.7, rows: { lo: 0, hi: 0, list: [0, 5] } },
			{ mode: 'orthogonal', feature: 0, value: 0, rows: { lo: 0, hi: 6, list: [] } },
			{ mode: 'cap', feature: 0, value: 0.05, rows: { lo: 2, hi: 6, list: [0] } },
			{ mode: 'orthogonal', feature: 0, value: 3, rows: { lo: 0, hi: 0, list: [1, 3] } },
			{ mode: 'cap', feature: 0, value: -0.2 }, // every row
			{ mode: 'orthogonal', feature: 0, value: 2 } // a zero direction: nothing to project on
		];
		const dirs = Float32Array.from({ length: specs.length * D }, (_, i) => (i >= (specs.length - 1) * D ? 0 : r()));
		// Entry 2 (orthogonal ×0) removes the component along dir 2; entry 3 then caps along a direction close to it.
		for (let i = 0; i < D; i++) dirs[3 * D + i] = dirs[2 * D + i] + 0.3 * dirs[i];

		for (const skip of [-1, 4]) {
			const want = Float64Array.from(resid);
			const inRows = (s: SteerRow, t: number) => !s.rows || (t >= s.rows.lo && t < s.rows.hi) || s.rows.list.includes(t);
			let capped = 0;
			for (let t = 0; t < T; t++) {
				if (t === skip) continue;
				const h = want.subarray(t * D, (t + 1) * D);
				specs.forEach((s, j) => {
					if (!inRows(s, t)) return;
					const v = dirs.subarray(j * D, (j + 1) * D);
					const dl = delta(s.mode, s.value, h, v, acts[t * DSAE + s.feature]);
					if (s.mode === 'cap' && maxAbs(dl) > 0) capped++;
					for (let i = 0; i < D; i++) h[i] += dl[i];
				});
			}
			const buf = storageFrom(device, resid, 'test.resid');
			const actsBuf = storageFrom(device, acts, 'test.acts');
			const kernel = await SteerKernel.create(device);
			kernel.apply(buf, T, D, () => dirs, specs, 'k', actsBuf, DSAE, skip);
			const got = new Float32Array(await readBuffer(device, buf, T * D * 4));
			const err = maxAbsDiff(got, want);
			const moved = Array.from({ length: T }, (_, t) => maxAbsDiff(got.subarray(t * D, (t + 1) * D), resid.subarray(t * D, (t + 1) * D)));
			console.log(
				`skip ${skip}: |kernel − Neuronpedia's formulas| ${err.toExponential(2)}; caps that bit ${capped}; change per row ${moved.map((x) => x.toFixed(2)).join(' ')}`
			);
			expect(err).toBeLessThan(1e-4);
			expect(capped).toBeGreaterThan(0); // the cap acted somewhere (and, by the formula check, nowhere it should not)
			if (skip >= 0) expect(moved[skip]).toBe(0);
			kernel.destroy();
			buf.destroy();
			actsBuf.destroy();
		}
	});
});

// feature_stats.wgsl on WebGPU against the TypeScript reference, over several contexts.
import { beforeAll, describe, expect, it } from 'vitest';
import { FeatureStatsGpu } from '../../src/lib/engine/gpu/feature-stats';
import { accumulateReference, emptyStats } from '../../src/lib/engine/sae/corpus-stats';
import { createStorage } from '../../src/lib/engine/gpu/buffers';
import { testDevice } from './device';

let device: GPUDevice;
beforeAll(async () => {
	device = await testDevice();
});

describe('feature_stats.wgsl against its TypeScript reference', () => {
	it('density, max, histogram and top contexts over 12 contexts of varying length, d_sae 300', async () => {
		const dSae = 300;
		let s = 12345;
		const rnd = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
		const gpu = await FeatureStatsGpu.create(device, dSae);
		const ref = emptyStats(dSae);
		for (let c = 0; c < 12; c++) {
			const tokens = 3 + Math.floor(rnd() * 20);
			// Sparse activations spanning several decades, distinct so the orderings are unambiguous.
			const acts = Float32Array.from({ length: tokens * dSae }, () => (rnd() < 0.15 ? 10 ** (rnd() * 5 - 3) : 0));
			const buf = createStorage(device, acts.byteLength + 256, 'test.acts');
			device.queue.writeBuffer(buf, 0, acts);
			gpu.accumulate(buf, tokens, c);
			accumulateReference(ref, acts, tokens, c);
			await device.queue.onSubmittedWorkDone();
			buf.destroy();
		}
		const got = await gpu.read();
		expect(got.tokens).toBe(ref.tokens);
		expect([...got.fires]).toEqual([...ref.fires]);
		expect([...got.maxAct]).toEqual([...ref.maxAct]);
		let histDiff = 0;
		for (let i = 0; i < ref.hist.length; i++) histDiff += Math.abs(got.hist[i] - ref.hist[i]);
		expect(histDiff).toBeLessThanOrEqual(2); // a value on a bin edge may fall either side of log10 rounding
		expect([...got.topVal]).toEqual([...ref.topVal]);
		expect([...got.topRef]).toEqual([...ref.topRef]);
		gpu.destroy();
	});
});

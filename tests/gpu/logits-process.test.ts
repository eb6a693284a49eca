import { beforeAll, describe, expect, it } from 'vitest';
import { LogitsProcessor, logitsProcessReference } from '../../src/lib/engine/gpu/logits-process';
import { createStorage } from '../../src/lib/engine/gpu/buffers';
import { testDevice } from './device';
import { maxAbsDiff } from '../numeric';

let device: GPUDevice;
beforeAll(async () => {
	device = await testDevice();
});

function lcg(seed: number) {
	let s = seed >>> 0;
	return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}

describe('logits_process.wgsl against its TypeScript reference', () => {
	// Vocabularies below, at and above the workgroup size, and not multiples of it.
	for (const [vocab, rows, row, temperature, freqPenalty] of [
		[7, 1, 0, 1, 0],
		[256, 2, 1, 0.7, 0.5],
		[512, 3, 2, 0, 1.2],
		[1000, 4, 0, 1.5, 0],
		[50257, 2, 1, 0.8, 0.3]
	]) {
		it(`V=${vocab}, row ${row} of ${rows}, temperature ${temperature}, freq_penalty ${freqPenalty}`, async () => {
			const rnd = lcg(vocab);
			const logits = Float32Array.from({ length: rows * vocab }, () => (rnd() - 0.5) * 20);
			const counts = Uint32Array.from({ length: vocab }, () => (rnd() < 0.1 ? Math.floor(rnd() * 4) : 0));
			// A buffer larger than the logits, as ORT's size-bucketed outputs are.
			const buf = createStorage(device, rows * vocab * 4 + 4096, 'test.logits');
			device.queue.writeBuffer(buf, 0, logits);
			const proc = await LogitsProcessor.create(device, vocab);
			const gpu = await proc.run(buf, rows, row, counts, { temperature, freqPenalty });
			const ref = logitsProcessReference(logits.subarray(row * vocab, (row + 1) * vocab), counts, { temperature, freqPenalty });
			expect(maxAbsDiff(gpu.logits, ref.logits)).toBeLessThan(1e-5);
			expect(maxAbsDiff(gpu.probs, ref.probs)).toBeLessThan(1e-6);
			expect(gpu.probs.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 4);
			proc.destroy();
			buf.destroy();
		});
	}
});

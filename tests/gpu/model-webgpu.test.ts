// The engine's real path on WebGPU: the built model cut at hook points, run by onnxruntime-web's
// WebGPU EP; the residual read from ORT's GPU buffers between segments and edited there; the
// logits kernel run on ORT's own device. Everything is compared with the plain TS reference.
import { describe, expect, it, inject } from 'vitest';
import { loupeGpuDevice } from '../../src/lib/engine/model/gpu-device';
import * as ort from 'onnxruntime-web/webgpu';
import { readLlama2cCheckpoint } from '../../src/lib/engine/model/llama2c/checkpoint';
import { ReferenceLlama } from '../../src/lib/engine/model/llama2c/reference-forward';
import { buildLlamaOnnx } from '../../src/lib/engine/model/llama2c/to-onnx';
import { SegmentRunner } from '../../src/lib/engine/model/runner';
import { LogitsProcessor, logitsProcessReference } from '../../src/lib/engine/gpu/logits-process';
import { readBuffer } from '../../src/lib/engine/gpu/buffers';
import { maxAbsDiff } from '../numeric';

declare module 'vitest' {
	export interface ProvidedContext {
		stories260KDir: string;
	}
}

const fetchFixture = async (name: string) => (await fetch(`/@fs${inject('stories260KDir')}/${name}`)).arrayBuffer();

describe('stories260K on the WebGPU execution provider', () => {
	it('segments cut at hooks: residuals on the GPU, an edit at a hook, logits and the sampler kernel (one row, and rows of a batch) match the reference', async () => {
		ort.env.wasm.numThreads = 1;
		const weights = readLlama2cCheckpoint(await fetchFixture('stories260K.bin'));
		const { dim, vocabSize } = weights.config;
		const model = buildLlamaOnnx(weights, [2, 5]); // blocks.2.hook_resid_pre, blocks.4.hook_resid_post
		const runner = await SegmentRunner.create(ort, model, 'webgpu');
		const device = await loupeGpuDevice();
		const processor = await LogitsProcessor.create(device, vocabSize);

		// A steering-like edit: add v to the residual at blocks.2.hook_resid_pre, on the GPU, in place.
		const v = Float32Array.from({ length: dim }, (_, i) => Math.sin(i) * 0.5);
		const ref = new ReferenceLlama(weights);
		const tokens = [1, 403, 407, 261, 1027 % vocabSize, 300, 17];
		const refLogits: Float32Array[] = [];
		const refResid: Float32Array[][] = [];
		for (const t of tokens) {
			refLogits.push(ref.step(t, (b, x) => b === 2 && x.forEach((_, i) => (x[i] += v[i]))));
			refResid.push(ref.residual.map((r) => r.slice()));
		}

		const chunks = [tokens.slice(0, 4), ...tokens.slice(4).map((t) => [t])];
		let pos = 0;
		let worstLogits = 0;
		let worstResid = 0;
		const counts = new Uint32Array(vocabSize);
		counts[403] = 2;
		counts[17] = 1;
		for (const chunk of chunks) {
			const S = chunk.length;
			const { logits, rows } = await runner.forward(chunk, async (hook, resid, n) => {
				expect(resid.location).toBe('gpu-buffer');
				const buf = resid.gpuBuffer as GPUBuffer;
				const got = new Float32Array(await readBuffer(device, buf, n * dim * 4));
				const boundary = hook === 'blocks.2.hook_resid_pre' ? 2 : 5;
				for (let s = 0; s < n; s++) {
					const row = got.subarray(s * dim, (s + 1) * dim);
					const want = refResid[pos + s][boundary].slice();
					if (boundary === 2) row.forEach((x, i) => (row[i] = x + v[i])); // the edit happens after the read
					worstResid = Math.max(worstResid, maxAbsDiff(row, want));
				}
				if (boundary === 2) device.queue.writeBuffer(buf, 0, got); // write the edited residual back
			});
			expect(logits.location).toBe('gpu-buffer');
			const all = new Float32Array(await readBuffer(device, logits.gpuBuffer as GPUBuffer, rows * vocabSize * 4));
			for (let s = 0; s < rows; s++)
				worstLogits = Math.max(worstLogits, maxAbsDiff(all.subarray(s * vocabSize, (s + 1) * vocabSize), refLogits[pos + s]));
			const p = { temperature: 0.7, freqPenalty: 0.2 };
			const gpu = await processor.run(logits.gpuBuffer as GPUBuffer, rows, rows - 1, counts, p);
			const want = logitsProcessReference(refLogits[pos + S - 1], counts, p);
			expect(maxAbsDiff(gpu.logits, want.logits)).toBeLessThan(2e-3);
			expect(maxAbsDiff(gpu.probs, want.probs)).toBeLessThan(1e-4);
			if (rows === 4) {
				// Several rows in one dispatch (side by side's batch): rows 1 and 3, each with its own counts.
				const other = new Uint32Array(vocabSize);
				other[300] = 3;
				const two = await processor.runRows(logits.gpuBuffer as GPUBuffer, rows, 1, 2, [counts, other], p);
				[counts, other].forEach((c, i) => {
					const w = logitsProcessReference(refLogits[pos + 1 + 2 * i], c, p);
					expect(maxAbsDiff(two[i].logits, w.logits)).toBeLessThan(2e-3);
					expect(maxAbsDiff(two[i].probs, w.probs)).toBeLessThan(1e-4);
				});
			}
			logits.dispose();
			pos += S;
		}
		console.log(`WebGPU vs reference: max |logits| ${worstLogits.toExponential(2)}, max |residual| ${worstResid.toExponential(2)}`);
		expect(worstLogits).toBeLessThan(1e-3);
		expect(worstResid).toBeLessThan(1e-4);
		processor.destroy();
		await runner.dispose();
	});
});

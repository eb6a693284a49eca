// A real export cut by graph surgery, on onnxruntime-web's WebGPU EP: the ORT-fused tiny GPT-2
// (com.microsoft Attention, SkipLayerNormalization, EmbedLayerNormalization) cut at three hooks,
// its residual handed between segments on the GPU and edited there, against the unmodified graph
// on the wasm EP (edited by an Add node inserted into the graph).
import { describe, expect, it, inject } from 'vitest';
import { loupeGpuDevice } from '../../src/lib/engine/model/gpu-device';
import * as ort from 'onnxruntime-web/webgpu';
import { openExportedDecoder } from '../../src/lib/engine/model/onnx/hook-manifest';
import { cutAtBoundaries } from '../../src/lib/engine/model/onnx/cut-segments';
import { decodeModel, encodeModel } from '../../src/lib/engine/model/onnx/graph';
import { SegmentRunner } from '../../src/lib/engine/model/runner';
import { readBuffer } from '../../src/lib/engine/gpu/buffers';
import { maxAbsDiff } from '../numeric';

declare module 'vitest' {
	export interface ProvidedContext {
		onnxExportsDir: string;
	}
}

describe('an exported, fused GPT-2 on WebGPU, cut by surgery', () => {
	it('logits with KV cache equal the unmodified graph on wasm, with a vector added at blocks.2.hook_resid_pre', async () => {
		ort.env.wasm.numThreads = 1;
		ort.env.logLevel = 'error';
		const bytes = new Uint8Array(await (await fetch(`/@fs${inject('onnxExportsDir')}/gpt2_ort_fused_past.onnx`)).arrayBuffer());
		const d = openExportedDecoder(bytes);
		const cuts = [1, 2, 5];
		const runner = await SegmentRunner.create(
			ort,
			{
				shape: { nLayers: 5, dModel: 32, vocabSize: 1000, maxSeqLen: 512 },
				io: d.io,
				cuts,
				segments: cutAtBoundaries(d.graph, d.trace, cuts)
			},
			'webgpu'
		);
		const device = await loupeGpuDevice();
		const v = Float32Array.from({ length: 32 }, (_, i) => Math.cos(i) * 0.8);

		// The reference: the unmodified graph with `resid + v` inserted at blocks.2.hook_resid_pre, which
		// the next layer reads both as the residual and, normalised, as its attention input.
		const tensor = d.trace.boundaries[2].tensor;
		const model = decodeModel(bytes);
		const skip = model.graph!.node!.find((n) => n.output!.includes(tensor))!;
		const normed = skip.output![0];
		for (const n of model.graph!.node!) n.input = n.input!.map((t) => (t === tensor ? 'resid+v' : t === normed ? 'norm(resid+v)' : t));
		model.graph!.initializer!.push({ name: 'v', dataType: 1, dims: [32], rawData: new Uint8Array(v.buffer.slice(0)) });
		model.graph!.node!.push(
			{ name: 'add_v', opType: 'Add', input: [tensor, 'v'], output: ['resid+v'] },
			{
				name: 'renorm',
				opType: 'LayerNormalization',
				input: ['resid+v', skip.input![2], skip.input![3]],
				output: ['norm(resid+v)'],
				attribute: [{ name: 'axis', type: 2, i: -1 }, ...(skip.attribute ?? [])]
			}
		);
		const reference = await ort.InferenceSession.create(encodeModel(model), { executionProviders: ['wasm'] });
		const plain = await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'] });
		const plainPast: Record<string, ort.Tensor> = {};
		for (let l = 0; l < 5; l++) plainPast[`past_${l}`] = new ort.Tensor('float32', new Float32Array(0), [2, 1, 4, 0, 8]);

		const tokens = [[5, 17, 923, 4], [88], [301], [7]];
		const past: Record<string, ort.Tensor> = {};
		for (let l = 0; l < 5; l++) past[`past_${l}`] = new ort.Tensor('float32', new Float32Array(0), [2, 1, 4, 0, 8]);
		let position = 0;
		let worst = 0;
		let change = 0;
		for (const chunk of tokens) {
			const S = chunk.length;
			const { logits } = await runner.forward(chunk, async (hook, residual, rows) => {
				if (hook !== 'blocks.2.hook_resid_pre') return;
				const delta = new Float32Array(rows * 32).map((_, i) => v[i % 32]);
				// Add v in place on ORT's buffer: copy out, add, write back (the steering kernel is tested
				// elsewhere). Not Tensor.getData(): it moves the tensor to the CPU, and the next segment
				// would then be fed that unedited copy.
				const buffer = residual.gpuBuffer as GPUBuffer;
				const data = new Float32Array(await readBuffer(device, buffer, rows * 32 * 4));
				device.queue.writeBuffer(
					buffer,
					0,
					data.map((x, i) => x + delta[i])
				);
			});
			const got = (await logits.getData()) as Float32Array;
			logits.dispose();
			const feeds = {
				input_ids: new ort.Tensor('int32', Int32Array.from(chunk), [1, S]),
				position_ids: new ort.Tensor(
					'int32',
					Int32Array.from(chunk, (_, i) => position + i),
					[1, S]
				),
				attention_mask: new ort.Tensor('int32', new Int32Array(position + S).fill(1), [1, position + S])
			};
			const r = await reference.run({ ...feeds, ...past });
			const u = await plain.run({ ...feeds, ...plainPast });
			for (let l = 0; l < 5; l++) {
				past[`past_${l}`] = r[`present_${l}`];
				plainPast[`past_${l}`] = u[`present_${l}`];
			}
			worst = Math.max(worst, maxAbsDiff(got, r.logits.data as Float32Array));
			// v must matter, or the comparison above proves nothing.
			change = Math.max(change, maxAbsDiff(got, u.logits.data as Float32Array));
			position += S;
		}
		await runner.dispose();
		console.log(`exported GPT-2 on WebGPU, cut at 3 hooks, v added: max |Δlogits| ${worst}`);
		expect(worst).toBeLessThan(1e-4);
		expect(change).toBeGreaterThan(0.01);
	});
});

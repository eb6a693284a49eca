/**
 * Benchmark: SAE encode + per-token top-k, Loupe's WGSL kernels against the same computation as an
 * ONNX graph (MatMul + Add + Relu + TopK) in onnxruntime-web's WebGPU EP, on the same device, both
 * starting from the same residual in a GPU buffer and ending with ids and values on the CPU.
 * Median of several runs after a warm-up; ratio = peer time / our time (>1: faster than the peer).
 */
import type * as Ort from 'onnxruntime-web';
import { GraphBuilder } from '../model/onnx/graph-builder';
import { Sae } from '../sae/sae';
import { SaeEncoder } from '../gpu/sae-encoder';
import { createStorage } from '../gpu/buffers';
import { loupeGpuDevice, webgpuProvider } from '../model/gpu-device';
import { benchLine, median, type BenchLine } from './bench-line';

function peerGraph(w: { wEnc: Float32Array; bEnc: Float32Array }, dIn: number, dSae: number, k: number): Uint8Array {
	const g = new GraphBuilder('sae-encode-peer');
	const x = g.input('x', 'float32', ['tokens', dIn]);
	const pre = g.op('Add', [g.op('MatMul', [x, g.weight('W_enc', w.wEnc, [dIn, dSae])]), g.weight('b_enc', w.bEnc, [dSae])]);
	const [values, indices] = g.opN('TopK', [g.op('Relu', [pre]), g.constant([k])], 2, { axis: -1, largest: 1, sorted: 1 });
	g.alias(values, 'values');
	g.alias(indices, 'indices');
	g.output('values', 'float32', ['tokens', k]);
	g.output('indices', 'int64', ['tokens', k]);
	return g.toBytes();
}

export async function benchSaeEncode(
	ort: typeof Ort,
	shapes: { tokens: number; dIn: number; dSae: number }[],
	reps: number,
	k = 32
): Promise<BenchLine[]> {
	const out: BenchLine[] = [];
	for (const { tokens, dIn, dSae } of shapes) {
		let seed = 7;
		const rnd = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
		const wEnc = Float32Array.from({ length: dIn * dSae }, () => rnd() / Math.sqrt(dIn));
		const bEnc = Float32Array.from({ length: dSae }, () => rnd() * 0.1);
		const sae = Sae.create(
			{
				architecture: 'relu',
				dIn,
				dSae,
				hookName: 'blocks.0.hook_resid_pre',
				applyBDecToInput: false,
				normalizeActivations: 'none',
				centerInput: false,
				format: 'bench',
				dtype: 'F32',
				name: 'bench'
			},
			{ wEnc, wDec: new Float32Array(0), bEnc, bDec: new Float32Array(dIn) }
		);
		const session = await ort.InferenceSession.create(peerGraph({ wEnc, bEnc }, dIn, dSae, k), {
			executionProviders: [await webgpuProvider()],
			graphOptimizationLevel: 'all'
		});
		const device = await loupeGpuDevice();
		const encoder = await SaeEncoder.create(device, sae);
		const x = Float32Array.from({ length: tokens * dIn }, () => rnd());
		const xBuf = createStorage(device, x.byteLength, 'bench.x');
		device.queue.writeBuffer(xBuf, 0, x);
		const xTensor = ort.Tensor.fromGpuBuffer(xBuf, { dataType: 'float32', dims: [tokens, dIn] });
		const ours = async () => {
			const t0 = performance.now();
			await encoder.encodeTopK(xBuf, tokens, k);
			return performance.now() - t0;
		};
		const peer = async () => {
			const t0 = performance.now();
			const r = await session.run({ x: xTensor });
			await r.values.getData();
			await r.indices.getData();
			const dt = performance.now() - t0;
			r.values.dispose();
			r.indices.dispose();
			return dt;
		};
		const timesOurs: number[] = [];
		const timesPeer: number[] = [];
		for (let i = 0; i < 2; i++) {
			await ours();
			await peer();
		}
		for (let i = 0; i < reps; i++) {
			timesOurs.push(await ours());
			timesPeer.push(await peer());
		}
		out.push(
			benchLine(
				{
					bench: 'sae_encode_topk',
					shape: `T=${tokens},d_in=${dIn},d_sae=${dSae},k=${k}`,
					unit: 'ms',
					value: median(timesOurs),
					peer: 'onnxruntime-web webgpu (MatMul+Add+Relu+TopK)',
					peerValue: median(timesPeer)
				},
				{ lowerIsBetter: true, extra: { runs: reps } }
			)
		);
		encoder.destroy();
		xBuf.destroy();
		await session.release();
	}
	return out;
}

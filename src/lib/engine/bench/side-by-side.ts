/**
 * What batching the side-by-side comparison buys: the default and the steered completion written as
 * one batch of two sequences (steering on row 1 only), against the same two streams one after the
 * other, same graph (stories260K as the app builds it for this backend, cut at the steering hook),
 * same sampling, seed and steering vector, same page and adapter. Tokens/s counts both streams'
 * tokens over the wall time of the whole comparison. Runs alternate so drift hits both alike.
 */
import type * as Ort from 'onnxruntime-web';
import type { LlamaWeights } from '../model/llama2c/checkpoint';
import { buildLlamaOnnx } from '../model/llama2c/to-onnx';
import { SegmentRunner, type Backend, type ResidualHook } from '../model/runner';
import { generateIds, generateIdsBatch } from '../model/generate';
import { LogitsProcessor } from '../gpu/logits-process';
import { SteerKernel } from '../gpu/steer';
import { createStorage } from '../gpu/buffers';
import { loupeGpuDevice } from '../model/gpu-device';
import { rowOnly } from '../steer/steering';
import { defaultSampling } from '../sample/sampler';
import { benchLine, median, type BenchLine } from './bench-line';

const HOOK = 'blocks.2.hook_resid_pre';

export async function benchSideBySide(
	ort: typeof Ort,
	weights: LlamaWeights,
	backend: Backend,
	{ modelName = 'stories260K', tokens = 32, runs = 3 } = {}
): Promise<BenchLine[]> {
	const d = weights.config.dim;
	const runner = await SegmentRunner.create(ort, buildLlamaOnnx(weights, [HOOK], { fused: backend === 'webgpu' }), backend);
	let processor: LogitsProcessor | null = null;
	let kernel: SteerKernel | null = null;
	let dummy: GPUBuffer | null = null;
	try {
		const device = backend === 'webgpu' ? await loupeGpuDevice() : null;
		if (device) {
			processor = await LogitsProcessor.create(device, weights.config.vocabSize);
			kernel = await SteerKernel.create(device);
			dummy = createStorage(device, 16, 'bench.no-acts');
		}
		const v = Float32Array.from({ length: d }, (_, i) => 0.5 * Math.sin(0.7 * i + 0.2));
		const specs = [{ mode: 'add' as const, feature: 0, value: 3 }];
		// The vector steering the app applies: the WGSL kernel on the GPU, the same sum on the CPU.
		const steer: ResidualHook = (name, residual, rows) => {
			if (name !== HOOK) return;
			if (residual.location === 'gpu-buffer' && kernel)
				return kernel.apply(residual.gpuBuffer as GPUBuffer, rows, d, () => v, specs, 'v', dummy!, 1, -1);
			const x = residual.data as Float32Array;
			for (let i = 0; i < rows * d; i++) x[i] += 3 * v[i % d];
		};
		// Greedy-free sampling so neither stream stops early; fixed seed, no stop tokens: both write `tokens`.
		const s = { ...defaultSampling, temperature: 0.9, topP: 0.95, maxTokens: tokens, seed: 5 };
		const prompt = [1, 403, 407, 261];
		const sequential = async () => {
			const t0 = performance.now();
			const a = await generateIds(runner, processor, prompt, s);
			const b = await generateIds(runner, processor, prompt, s, { onResidual: steer });
			return ((a.tokens.length + b.tokens.length) * 1000) / (performance.now() - t0);
		};
		const batched = async () => {
			const t0 = performance.now();
			const [a, b] = await generateIdsBatch(runner, processor, prompt, s, 2, {
				onResidual: rowOnly(steer, 1, 2, d, async () => device!)
			});
			return ((a.tokens.length + b.tokens.length) * 1000) / (performance.now() - t0);
		};
		await sequential(); // warm-up: shader compilation, buffer pools for both batch sizes
		await batched();
		const seq: number[] = [];
		const bat: number[] = [];
		for (let r = 0; r < runs; r++) {
			seq.push(await sequential());
			bat.push(await batched());
		}
		return [
			benchLine({
				bench: 'side_by_side_batched',
				shape: `${modelName}, default + steered (a vector at ${HOOK}), ${tokens} tokens each, ${backend}${backend === 'webgpu' ? ', fused graph' : ''}`,
				unit: 'tokens/s (both streams)',
				value: median(bat),
				peer: 'the two streams one after the other (same graph, page and adapter)',
				peerValue: median(seq)
			})
		];
	} finally {
		processor?.destroy();
		kernel?.destroy();
		dummy?.destroy();
		await runner.dispose();
	}
}

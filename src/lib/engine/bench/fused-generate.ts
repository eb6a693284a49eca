/**
 * What the fused llama2.c graph buys: greedy tokens/s of the fused graph (onnxruntime's contrib
 * ops) over the plain one (standard ops), same weights, session options, page and adapter, runs
 * alternating so drift on a shared machine hits both alike; and the GPU dispatches one generated
 * token costs in each.
 *
 * Dispatches are counted where they happen: every `dispatchWorkgroups(Indirect)` call on a
 * GPUComputePassEncoder while one token's forward and its logits read-back run (onnxruntime-web's
 * WebGPU EP records through the page's WebGPU API, so a wrapper on the prototype sees each one).
 * Buffer copies and queue submits are counted beside them.
 */
import type * as Ort from 'onnxruntime-web';
import type { LlamaWeights } from '../model/llama2c/checkpoint';
import { buildLlamaOnnx } from '../model/llama2c/to-onnx';
import { SegmentRunner, type Backend } from '../model/runner';
import { benchLine, median, type BenchLine } from './bench-line';

type OrtModule = typeof Ort;

/** Greedy decoding from BOS for `tokens` steps after one untimed step; the logits read back as the app does. */
async function tokensPerSecond(runner: SegmentRunner, tokens: number): Promise<number> {
	runner.reset();
	let next = 1; // BOS
	let t0 = 0;
	for (let i = 0; i <= tokens; i++) {
		if (i === 1) t0 = performance.now();
		next = await step(runner, next);
	}
	return (tokens * 1000) / (performance.now() - t0);
}

async function step(runner: SegmentRunner, token: number): Promise<number> {
	const { logits } = await runner.forward([token]);
	const data = (await logits.getData()) as Float32Array;
	logits.dispose();
	let best = 0;
	for (let v = 1; v < data.length; v++) if (data[v] > data[best]) best = v;
	return best;
}

export interface GpuWork {
	dispatches: number;
	copies: number;
	submits: number;
}

/** Counts the GPU work `run` records (in this realm: page or worker). Null where there is no WebGPU. */
export async function countGpuWork(run: () => Promise<unknown>): Promise<GpuWork | null> {
	const g = globalThis as unknown as Record<string, { prototype: Record<string, unknown> } | undefined>;
	const pass = g.GPUComputePassEncoder?.prototype;
	const encoder = g.GPUCommandEncoder?.prototype;
	const queue = g.GPUQueue?.prototype;
	if (!pass || !encoder || !queue) return null;
	const work: GpuWork = { dispatches: 0, copies: 0, submits: 0 };
	const wrap = (proto: Record<string, unknown>, name: string, key: keyof GpuWork) => {
		const original = proto[name] as (...a: unknown[]) => unknown;
		proto[name] = function (this: unknown, ...a: unknown[]) {
			work[key]++;
			return original.apply(this, a);
		};
		return () => (proto[name] = original);
	};
	const restore = [
		wrap(pass, 'dispatchWorkgroups', 'dispatches'),
		wrap(pass, 'dispatchWorkgroupsIndirect', 'dispatches'),
		wrap(encoder, 'copyBufferToBuffer', 'copies'),
		wrap(queue, 'submit', 'submits')
	];
	try {
		await run();
	} finally {
		for (const r of restore) r();
	}
	return work;
}

/**
 * Both lines: `generate_fused_vs_unfused` (tokens/s, ratio fused / plain) and, on WebGPU,
 * `dispatches_per_token` (one greedy token at position `at`, ratio plain / fused).
 */
export async function benchFusedGenerate(
	ort: OrtModule,
	weights: LlamaWeights,
	backend: Backend,
	{ modelName = 'stories260K', tokens = 24, runs = 3, at = 8, attentions = ['ops'] as ('ops' | 'gqa')[] } = {}
): Promise<BenchLine[]> {
	// The plain graph first, then one fused graph per attention kind (fused-ops.ts).
	const variants = [
		{ label: 'plain', model: buildLlamaOnnx(weights, [], { fused: false }) },
		...attentions.map((attention) => ({
			label: `fused, ${attention === 'gqa' ? 'GroupQueryAttention' : 'RotaryEmbedding + Einsum attention'}`,
			model: buildLlamaOnnx(weights, [], { fused: true, attention })
		}))
	];
	const runners: SegmentRunner[] = [];
	try {
		for (const v of variants) runners.push(await SegmentRunner.create(ort, v.model, backend));
		for (const r of runners) await tokensPerSecond(r, 4); // warm-up: shader compilation, buffer pools
		const samples = runners.map(() => [] as number[]);
		for (let run = 0; run < runs; run++) for (const [i, r] of runners.entries()) samples[i].push(await tokensPerSecond(r, tokens));
		const [plain, ...fused] = samples.map(median);
		const c = weights.config;
		const shape = (label: string) =>
			`${modelName} (${c.nLayers} layers, d_model ${c.dim}), uncut, greedy ${tokens} tokens, ${backend}, ${label}`;
		const lines = fused.map((value, i) =>
			benchLine({
				bench: 'generate_fused_vs_unfused',
				shape: shape(variants[i + 1].label),
				unit: 'tokens/s',
				value,
				peer: 'the same model as standard ONNX ops (same page, same adapter)',
				peerValue: plain
			})
		);
		// One token's GPU work at a fixed position, after the cache holds `at` tokens.
		const work: (GpuWork | null)[] = [];
		for (const r of runners) {
			r.reset();
			let next = 1;
			for (let i = 0; i < at; i++) next = await step(r, next);
			work.push(await countGpuWork(() => step(r, next)));
		}
		const [wp, ...wfs] = work;
		for (const [i, wf] of wfs.entries())
			if (wp && wf)
				lines.push(
					benchLine(
						{
							bench: 'dispatches_per_token',
							shape: `${modelName}, one greedy token at position ${at}, ${backend}, ${variants[i + 1].label}`,
							unit: 'dispatches',
							value: wf.dispatches,
							peer: 'the same model as standard ONNX ops',
							peerValue: wp.dispatches
						},
						{
							lowerIsBetter: true,
							decimals: 0,
							extra: {
								method: 'GPUComputePassEncoder.dispatchWorkgroups calls during forward + logits read-back',
								copies: wf.copies,
								peer_copies: wp.copies,
								submits: wf.submits,
								peer_submits: wp.submits
							}
						}
					)
				);
		return lines;
	} finally {
		// Release the newest first: ORT keeps its device while any WebGPU session lives.
		for (const r of runners.reverse()) await r.dispose();
	}
}

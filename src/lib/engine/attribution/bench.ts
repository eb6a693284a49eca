/**
 * The attribution benchmark for `npm run bench`: time to compute every edge of a graph on the GPU
 * (Loupe's WGSL backward passes) against the same edges by TensorFlow.js autograd on its WebGPU
 * backend, in the same page on the same adapter, after a warm-up of each; the two must agree
 * (the line says how closely). The shape is stories260K, a 16-token prompt, transcoders
 * at every layer. To wire it: `lines.push(await benchAttribution(device, weights, tokens, transcoders))`.
 */
import type { LlamaWeights } from '../model/llama2c/checkpoint';
import { benchLine, median, type BenchLine } from '../bench/bench-line';
import { computeEdges } from './edges';
import { frozenForward } from './frozen-forward';
import { gpuBackend } from './gpu-backend';
import { linearContext } from './linear-model';
import { buildReplacement } from './replacement';
import { salientLogits } from './salient-logits';
import { tfjsEdges, tfjsWebgpu } from './tfjs-peer';
import type { Transcoder } from './transcoder';

export async function benchAttribution(
	device: GPUDevice,
	w: LlamaWeights,
	tokens: number[],
	transcoders: Transcoder[],
	{ batchSize = 32, runs = 3 }: { batchSize?: number; runs?: number } = {}
): Promise<BenchLine> {
	const fwd = frozenForward(w, tokens);
	const rep = buildReplacement(fwd, transcoders);
	const ctx = linearContext(w, fwd, rep);
	const V = w.config.vocabSize;
	const logits = salientLogits(fwd.logits.subarray((tokens.length - 1) * V), w.classifier, w.config.dim);
	const backend = await gpuBackend(device, ctx);
	const mine: number[] = [];
	let edges: Float32Array = new Float32Array(0);
	for (let r = 0; r <= runs; r++) {
		const t0 = performance.now();
		edges = (await computeEdges(ctx, backend, rep.features, logits, rep.transcoders, { batchSize })).edges;
		if (r > 0) mine.push(performance.now() - t0); // run 0 warms up pipelines and buffers
	}
	backend.dispose();
	const tf = await tfjsWebgpu();
	const peer: number[] = [];
	let peerEdges: Float32Array = new Float32Array(0);
	for (let r = 0; r <= runs; r++) {
		const out = await tfjsEdges(tf, ctx, rep.features, logits, rep.transcoders, batchSize);
		peerEdges = out.edges;
		if (r > 0) peer.push(out.ms);
	}
	let diff = 0;
	let largest = 0;
	for (let i = 0; i < edges.length; i++) {
		diff = Math.max(diff, Math.abs(edges[i] - peerEdges[i]));
		largest = Math.max(largest, Math.abs(edges[i]));
	}
	const n = edges.length / (rep.features.length + logits.length);
	return benchLine(
		{
			bench: 'attribution_edges',
			shape: `P=${tokens.length},targets=${rep.features.length + logits.length},sources=${n},batch=${batchSize}`,
			unit: 'ms',
			value: median(mine),
			peer: 'tfjs webgpu autograd',
			peerValue: median(peer)
		},
		{ lowerIsBetter: true, decimals: 1, extra: { max_abs_diff: diff, largest_edge: largest } }
	);
}

/**
 * The cost of cutting a model at hook points: greedy tokens/s of the model cut at one and at three
 * boundaries over the same model uncut, same session options, same adapter, in the same page.
 * The uncut and cut runs alternate so drift on a shared machine hits both alike.
 */
import type * as Ort from 'onnxruntime-web';
import { SegmentRunner, type Backend } from '../model/runner';
import type { SegmentedModel } from '../model/segments';
import { benchLine, median, type BenchLine } from './bench-line';

type OrtModule = typeof Ort;

async function tokensPerSecond(runner: SegmentRunner, tokens: number): Promise<number> {
	const V = runner.model.shape.vocabSize;
	runner.reset();
	let next = 0;
	let t0 = 0;
	for (let i = 0; i <= tokens; i++) {
		if (i === 1) t0 = performance.now(); // the first step (prefill of one token) is warm-up
		const { logits } = await runner.forward([next]);
		const data = (await logits.getData()) as Float32Array; // the same read-back in every variant
		logits.dispose();
		let best = 0;
		for (let v = 1; v < V; v++) if (data[v] > data[best]) best = v;
		next = best;
	}
	return (tokens * 1000) / (performance.now() - t0);
}

export async function benchSegmentation(
	ort: OrtModule,
	segment: (cuts: number[]) => SegmentedModel,
	nLayers: number,
	backend: Backend,
	modelName: string,
	{ tokens = 24, runs = 3 } = {}
): Promise<BenchLine[]> {
	const mid = Math.max(1, Math.floor(nLayers / 2));
	const variants = [
		{ label: 'uncut', cuts: [] as number[] },
		{ label: `cut at 1 hook (blocks.${mid}.hook_resid_pre)`, cuts: [mid] },
		{ label: 'cut at 3 hooks', cuts: [...new Set([1, mid, nLayers])].slice(0, 3) }
	];
	const runners: SegmentRunner[] = [];
	for (const v of variants) runners.push(await SegmentRunner.create(ort, segment(v.cuts), backend));
	try {
		const samples = variants.map(() => [] as number[]);
		for (const r of runners) await tokensPerSecond(r, 4); // warm-up: shader compilation, buffer pools
		for (let run = 0; run < runs; run++) for (const [i, r] of runners.entries()) samples[i].push(await tokensPerSecond(r, tokens));
		const base = median(samples[0]);
		return variants.slice(1).map((v, i) =>
			benchLine({
				bench: 'segmentation',
				shape: `${modelName}, ${v.label}, ${runners[i + 1].model.segments.length} segments, ${backend}`,
				unit: 'tokens/s',
				value: median(samples[i + 1]),
				peer: 'the same model uncut',
				peerValue: base
			})
		);
	} finally {
		// Release the newest first: ORT keeps its device while any WebGPU session lives.
		for (const r of runners.reverse()) await r.dispose();
	}
}

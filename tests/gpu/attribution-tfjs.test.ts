import { describe, expect, inject, it } from 'vitest';
import { readLlama2cCheckpoint } from '../../src/lib/engine/model/llama2c/checkpoint';
import { gpuBackend } from '../../src/lib/engine/attribution/gpu-backend';
import { attribute } from '../../src/lib/engine/attribution/graph';
import { tfjsEdges, tfjsWebgpu } from '../../src/lib/engine/attribution/tfjs-peer';
import { frozenForward } from '../../src/lib/engine/attribution/frozen-forward';
import { buildReplacement } from '../../src/lib/engine/attribution/replacement';
import { linearContext } from '../../src/lib/engine/attribution/linear-model';
import { salientLogits } from '../../src/lib/engine/attribution/salient-logits';
import { computeEdges } from '../../src/lib/engine/attribution/edges';
import { randomTranscoders } from '../attribution-reference';
import { maxAbs, maxAbsDiff } from '../numeric';
import { testDevice } from './device';

declare module 'vitest' {
	export interface ProvidedContext {
		stories260KDir: string;
		fullBench: boolean;
	}
}

// CI checks the edges of a few targets (the logits and features at the top and bottom, ~6 s);
// LOUPE_BENCH=1 times every target of both after a warm-up (~45 s on SwiftShader, idle machine).
const full = inject('fullBench');

describe('attribution backward passes against TensorFlow.js autograd (WebGPU), same page and adapter', () => {
	it('gives the same edges, and times both', { timeout: full ? 600_000 : 120_000 }, async () => {
		const tf = await tfjsWebgpu();
		const device = await testDevice();
		const buf = await (await fetch(`/@fs${inject('stories260KDir')}/stories260K.bin`)).arrayBuffer();
		const w = readLlama2cCheckpoint(buf, 'stories260K.bin');
		// 4 tokens: the 16-token shape runs past 20 minutes for TF.js on SwiftShader (bench.ts takes it on real GPUs).
		const tokens = [1, 365, 209, 263];
		const tcs = randomTranscoders(w.config, 7);
		const fwd = frozenForward(w, tokens);
		const rep = buildReplacement(fwd, tcs);
		const ctx = linearContext(w, fwd, rep);
		const V = w.config.vocabSize;
		const logits = salientLogits(fwd.logits.subarray((tokens.length - 1) * V), w.classifier, w.config.dim);
		const B = 32;
		const backend = await gpuBackend(device, ctx);
		const run = async () => {
			const t0 = performance.now();
			const r = await computeEdges(ctx, backend, rep.features, logits, rep.transcoders, { batchSize: B });
			return { r, ms: performance.now() - t0 };
		};
		if (full) await run(); // warm-up: pipelines, buffers
		const mine = await run();
		backend.dispose();
		const N = rep.features.length;
		const only = full ? undefined : [...logits.map((_, k) => N + k), 0, 1, N - 2, N - 1];
		if (full) await tfjsEdges(tf, ctx, rep.features, logits, rep.transcoders, B); // warm-up: TF's kernels
		const peer = await tfjsEdges(tf, ctx, rep.features, logits, rep.transcoders, B, only);
		const rows = only ?? Array.from({ length: mine.r.nTargets }, (_, t) => t);
		const pick = (e: Float32Array) => rows.flatMap((t) => Array.from(e.subarray(t * mine.r.nSources, (t + 1) * mine.r.nSources)));
		const scale = maxAbs(pick(mine.r.edges));
		const diff = maxAbsDiff(pick(peer.edges), pick(mine.r.edges));
		if (full)
			console.log(
				`attribution backward, ${mine.r.nTargets} targets × ${mine.r.nSources} sources, batch ${B}: Loupe WGSL ${mine.ms.toFixed(0)} ms, TF.js webgpu autograd ${peer.ms.toFixed(0)} ms, ratio ${(peer.ms / mine.ms).toFixed(2)}; max |Δ edge| ${diff.toExponential(2)} (largest ${scale.toFixed(2)})`
			);
		expect(diff).toBeLessThan(1e-4 * scale);
		// and the CPU path's graph agrees too (the attribution as a whole, not just the backend)
		const { graph } = await attribute(w, tokens, tcs, { batchSize: B });
		expect(maxAbsDiff(pick(graph.edges), pick(peer.edges))).toBeLessThan(1e-4 * scale);
		console.log(`TF.js autograd vs Loupe on ${rows.length} targets: max |Δ edge| ${diff.toExponential(2)} (largest ${scale.toFixed(2)})`);
	});
});

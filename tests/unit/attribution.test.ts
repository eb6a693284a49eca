import { describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-web';
import { readLlama2cCheckpoint } from '../../src/lib/engine/model/llama2c/checkpoint';
import { Llama2cTokenizer, BOS } from '../../src/lib/engine/model/llama2c/tokenizer';
import { buildLlamaOnnx } from '../../src/lib/engine/model/llama2c/to-onnx';
import { ReferenceLlama } from '../../src/lib/engine/model/llama2c/reference-forward';
import { attribute } from '../../src/lib/engine/attribution/graph';
import { frozenReference, randomTranscoders } from '../attribution-reference';
import { readArrayBuffer, stories260KDir } from '../fixtures';
import { maxAbsDiff } from '../numeric';

ort.env.wasm.numThreads = 1;

const weights = readLlama2cCheckpoint(readArrayBuffer(`${stories260KDir}/stories260K.bin`), 'stories260K.bin');
const tokenizer = new Llama2cTokenizer(readArrayBuffer(`${stories260KDir}/tok512.bin`), weights.config.vocabSize);
const tokens = [BOS, ...tokenizer.encode('Lily saw a', false)];

async function ortLogits(tks: number[]): Promise<Float32Array> {
	const model = buildLlamaOnnx(weights, []);
	const [seg] = model.segments;
	const session = await ort.InferenceSession.create(seg.bytes, { executionProviders: ['wasm'] });
	const headDim = weights.config.dim / weights.config.nHeads;
	const S = tks.length;
	const feeds: Record<string, ort.Tensor> = {
		input_ids: new ort.Tensor('int64', BigInt64Array.from(tks.map(BigInt)), [1, S]),
		position_ids: new ort.Tensor('int64', BigInt64Array.from(tks.map((_, i) => BigInt(i))), [1, S]),
		attention_mask: new ort.Tensor('int64', new BigInt64Array(S).fill(1n), [1, S])
	};
	for (let l = 0; l < weights.config.nLayers; l++)
		for (const kind of ['key', 'value'])
			feeds[`past_key_values.${l}.${kind}`] = new ort.Tensor('float32', new Float32Array(0), [1, weights.config.nKvHeads, 0, headDim]);
	const out = await session.run(feeds);
	await session.release();
	return out.logits.data as Float32Array;
}

describe('attribution graph on stories260K with seeded random transcoders', async () => {
	const transcoders = randomTranscoders(weights.config, 7);
	const { graph, forward } = await attribute(weights, tokens, transcoders, { batchSize: 16 });
	const { nSources, nTargets, features, edges } = graph;
	const N = features.length;
	const V = weights.config.vocabSize;
	const P = tokens.length;
	const ref = frozenReference(weights, tokens, transcoders);

	it('has active features at every layer, errors, tokens and the salient logits', () => {
		console.log(
			`${P} tokens, ${N} active features, ${graph.logits.length} logits (p = ${graph.logits.reduce((a, l) => a + l.prob, 0).toFixed(3)}), ${nTargets} × ${nSources} edges`
		);
		for (let l = 0; l < graph.nLayers; l++) expect(features.some((f) => f.layer === l)).toBe(true);
		expect(nSources).toBe(N + graph.nLayers * P + P);
		expect(graph.logits.length).toBeGreaterThan(0);
		expect(graph.logits.length).toBeLessThanOrEqual(10);
	});

	it('is complete: every target input = Σ incoming edges + its constant term, to 1e-4 relative', () => {
		let worst = 0;
		for (let t = 0; t < nTargets; t++) {
			let s = graph.bias[t];
			let mag = Math.abs(graph.bias[t]);
			for (let j = 0; j < nSources; j++) {
				s += edges[t * nSources + j];
				mag += Math.abs(edges[t * nSources + j]);
			}
			// Relative to the size of the terms summed (an input near 0 can be the sum of large edges).
			worst = Math.max(worst, Math.abs(s - graph.input[t]) / Math.max(mag, 1e-6));
		}
		console.log(`completeness: worst |Σ edges + bias − input| / Σ|terms| = ${worst.toExponential(2)}`);
		expect(worst).toBeLessThan(1e-4);
	});

	it("reads targets' inputs that an independent implementation computes (pre-activations, demeaned logits)", () => {
		const run = ref.run();
		let worst = 0;
		features.forEach((f, i) => (worst = Math.max(worst, Math.abs(run.pre[f.layer][f.pos][f.feature] - graph.input[i]))));
		const mean = run.logits.reduce((a, b) => a + b, 0) / V;
		graph.logits.forEach((lg, k) => (worst = Math.max(worst, Math.abs(run.logits[lg.token] - mean - graph.input[N + k]))));
		expect(worst).toBeLessThan(1e-9);
		// The feature set is the reference's: every nonzero activation is a node, and only those.
		const count = ref.act.flat(2).filter((a) => a !== 0).length;
		expect(N).toBe(count);
	});

	it("reproduces the real model's logits (onnxruntime on the llama2.c ONNX build) to 1e-4, with its error nodes", async () => {
		const real = await ortLogits(tokens);
		// The plain TS forward, which reproduces run.c's output, agrees with ORT to the same tolerance.
		const llama = new ReferenceLlama(weights);
		let plain = 0;
		tokens.forEach((t, p) => (plain = Math.max(plain, maxAbsDiff(llama.step(t), real.subarray(p * V, (p + 1) * V)))));
		expect(plain).toBeLessThan(1e-4);
		let frozen = 0;
		for (let i = 0; i < P * V; i++) frozen = Math.max(frozen, Math.abs(real[i] - forward.logits[i]));
		const last = real.subarray((P - 1) * V);
		const run = ref.run();
		let replaced = 0;
		for (let v = 0; v < V; v++) replaced = Math.max(replaced, Math.abs(run.logits[v] - last[v]));
		// The graph's logit nodes: Σ edges + bias against the real model's demeaned logits.
		const mean = last.reduce((a, b) => a + b, 0) / V;
		let nodes = 0;
		graph.logits.forEach((lg, k) => {
			let s = graph.bias[N + k];
			for (let j = 0; j < nSources; j++) s += edges[(N + k) * nSources + j];
			nodes = Math.max(nodes, Math.abs(s - (last[lg.token] - mean)));
		});
		console.log(
			`max |logit − real|: frozen forward ${frozen.toExponential(2)}, replacement model ${replaced.toExponential(2)}, logit nodes ${nodes.toExponential(2)}`
		);
		expect(frozen).toBeLessThan(1e-4);
		expect(replaced).toBeLessThan(1e-4);
		expect(nodes).toBeLessThan(1e-4);
	});

	it('gives every edge as the finite difference of the independent frozen replacement model', () => {
		const base = ref.run();
		const mean = (l: number[]) => l.reduce((a, b) => a + b, 0) / V;
		const targetInputs = (r: ReturnType<typeof ref.run>) => [
			...features.map((f) => r.pre[f.layer][f.pos][f.feature]),
			...graph.logits.map((lg) => r.logits[lg.token] - mean(r.logits))
		];
		const b0 = targetInputs(base);
		const h = 0.5;
		let worst = 0;
		let largest = 0;
		const check = (col: number, perturb: (by: number) => ReturnType<typeof ref.run>) => {
			const up = targetInputs(perturb(1 + h));
			const down = targetInputs(perturb(1 - h));
			for (let t = 0; t < nTargets; t++) {
				// The edge is the source's value × ∂input/∂value: (f(1+h) − f(1−h)) / 2h, exact for a linear map.
				const fd = (up[t] - down[t]) / (2 * h);
				const e = edges[t * nSources + col];
				worst = Math.max(worst, Math.abs(fd - e));
				largest = Math.max(largest, Math.abs(fd));
			}
		};
		features.forEach((f, i) => check(i, (by) => ref.run({ kind: 'feature', layer: f.layer, pos: f.pos, feature: f.feature, by })));
		for (let l = 0; l < graph.nLayers; l++)
			for (let p = 0; p < P; p++) check(N + l * P + p, (by) => ref.run({ kind: 'error', layer: l, pos: p, by }));
		for (let p = 0; p < P; p++) check(N + graph.nLayers * P + p, (by) => ref.run({ kind: 'token', pos: p, by }));
		console.log(
			`edges vs finite differences: max |Δ| ${worst.toExponential(2)} (largest edge ${largest.toFixed(3)}), baseline inputs ${b0.length}`
		);
		expect(worst).toBeLessThan(1e-5 * Math.max(1, largest));
	});

	it('keeps only the most influential features when asked (maxFeatureNodes), their edges unchanged, the rest reported as dropped', async () => {
		// One ranking from the logit rows alone (batch 8, one batch per ranking, 8 features):
		// circuit-tracer's partial influence of feature f is Σ_k p_k |A[k, f]| / Σ_j |A[k, j]|.
		const score = features.map((_, f) =>
			graph.logits.reduce((acc, lg, k) => {
				const row = edges.subarray((N + k) * nSources, (N + k + 1) * nSources);
				const sum = row.reduce((a, v) => a + Math.abs(v), 0);
				return acc + (lg.prob * Math.abs(row[f])) / sum;
			}, 0)
		);
		const top = score
			.map((v, i) => [v, i])
			.sort((a, b) => b[0] - a[0] || a[1] - b[1])
			.slice(0, 8)
			.map(([, i]) => i)
			.sort((a, b) => a - b);
		const key = (f: { layer: number; pos: number; feature: number }) => `${f.layer}/${f.pos}/${f.feature}`;
		const indexOf = (f: { layer: number; pos: number; feature: number }) => features.findIndex((g) => key(g) === key(f));
		const small = (await attribute(weights, tokens, transcoders, { batchSize: 8, updateInterval: 1, maxFeatureNodes: 8 })).graph;
		expect(small.nActive).toBe(N);
		expect(small.features.map(indexOf)).toEqual(top);
		// Larger: several rankings. Every kept edge is the full graph's; completeness holds with `dropped`.
		const mid = (await attribute(weights, tokens, transcoders, { batchSize: 8, updateInterval: 2, maxFeatureNodes: 60 })).graph;
		expect(mid.features.length).toBe(60);
		expect(mid.nSources).toBe(60 + graph.nLayers * P + P);
		const keptIdx = mid.features.map(indexOf);
		const fullRow = (t: number) => (t < 60 ? keptIdx[t] : N + (t - 60));
		const fullCol = (s: number) => (s < 60 ? keptIdx[s] : N + (s - 60));
		let worstEdge = 0;
		let worstSum = 0;
		for (let t = 0; t < mid.nTargets; t++) {
			let s = mid.bias[t] + mid.dropped[t];
			for (let j = 0; j < mid.nSources; j++) {
				s += mid.edges[t * mid.nSources + j];
				worstEdge = Math.max(worstEdge, Math.abs(mid.edges[t * mid.nSources + j] - edges[fullRow(t) * nSources + fullCol(j)]));
			}
			worstSum = Math.max(worstSum, Math.abs(s - mid.input[t]) / Math.max(1, Math.abs(mid.input[t])));
			expect(mid.input[t]).toBe(graph.input[fullRow(t)]);
		}
		expect(worstEdge).toBe(0);
		expect(worstSum).toBeLessThan(1e-4);
		expect(mid.dropped.some((d) => d !== 0)).toBe(true);
	});
});

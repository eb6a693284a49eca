// Attribution graphs on exported decoders (weights traced from the graph, model/onnx/decoder-weights.ts)
// with seeded random transcoders: completeness (every target's input = Σ incoming edges + its
// constant term), and the frozen forward, the replacement model with its error nodes, and the logit
// nodes against onnxruntime's (wasm) forward of the unmodified export, read straight from its files.
import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as ort from 'onnxruntime-web';
import { openExportGraph } from '../../src/lib/engine/model/hf/exported-model';
import { traceDecoderWeights } from '../../src/lib/engine/model/onnx/decoder-weights';
import { attribute } from '../../src/lib/engine/attribution/graph';
import { interveneLogits, predictFromGraph, type FeatureIntervention } from '../../src/lib/engine/attribution/intervene';
import { randomTranscoders } from '../../src/lib/engine/attribution/random-transcoders';
import { exportedForward } from '../../src/lib/engine/attribution/exported-forward';
import { buildReplacement } from '../../src/lib/engine/attribution/replacement';
import { activate, preActivations, reconstruct } from '../../src/lib/engine/attribution/transcoder';
import { fixturesDir } from '../fixtures';

ort.env.wasm.numThreads = 1;
ort.env.logLevel = 'error';

const dirOf = (name: string) => join(resolve(fixturesDir, 'torch-exports'), name);

/** The export's logits at every position, [P · V], from onnxruntime on the files as shipped. */
async function ortLogits(name: string, ids: number[], nLayers: number, nKv: number, hs: number): Promise<Float32Array> {
	const dir = dirOf(name);
	const data = join(dir, 'model.onnx_data');
	const session = await ort.InferenceSession.create(new Uint8Array(readFileSync(join(dir, 'model.onnx'))), {
		executionProviders: ['wasm'],
		...(existsSync(data) ? { externalData: [{ path: 'model.onnx_data', data: new Uint8Array(readFileSync(data)) }] } : {})
	});
	const i64 = (v: number[]) => new ort.Tensor('int64', BigInt64Array.from(v.map(BigInt)), [1, v.length]);
	const feeds: Record<string, ort.Tensor> = {
		input_ids: i64(ids),
		attention_mask: i64(ids.map(() => 1)),
		position_ids: i64(ids.map((_, i) => i))
	};
	for (let l = 0; l < nLayers; l++)
		for (const kind of ['key', 'value'])
			feeds[`past_key_values.${l}.${kind}`] = new ort.Tensor('float32', new Float32Array(0), [1, nKv, 0, hs]);
	const out = await session.run(feeds);
	await session.release();
	return out.logits.data as Float32Array;
}

describe.each(['llama', 'gemma3', 'gpt2'])('attribution graph on the %s export with seeded random transcoders', async (name) => {
	const dir = dirOf(name);
	const opened = await openExportGraph(
		new Uint8Array(readFileSync(join(dir, 'model.onnx'))),
		'model.onnx',
		async (path) => new Uint8Array(readFileSync(join(dir, path))),
		JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'))
	);
	const w = traceDecoderWeights(opened.decoder, opened.externalData, { name });
	const ref = JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8')) as { prompts: { input_ids: number[] }[] };
	const tokens = ref.prompts[1].input_ids; // 5 tokens: past gemma3's sliding window of 4
	const transcoders = randomTranscoders(w.config, 7);
	const { graph, forward } = await attribute(w, tokens, transcoders, { batchSize: 16 });
	const { nSources, nTargets, features, edges } = graph;
	const N = features.length;
	const V = w.config.vocabSize;
	const P = tokens.length;
	const real = await ortLogits(name, tokens, w.config.nLayers, w.config.nKvHeads, w.exported!.headSize);

	it('is complete: every target input = Σ incoming edges + its constant term, to 1e-4 relative', () => {
		for (let l = 0; l < graph.nLayers; l++) expect(features.some((f) => f.layer === l)).toBe(true);
		let worst = 0;
		for (let t = 0; t < nTargets; t++) {
			let s = graph.bias[t];
			let mag = Math.abs(graph.bias[t]);
			for (let j = 0; j < nSources; j++) {
				s += edges[t * nSources + j];
				mag += Math.abs(edges[t * nSources + j]);
			}
			worst = Math.max(worst, Math.abs(s - graph.input[t]) / Math.max(mag, 1e-6));
		}
		console.log(
			`${name}: ${P} tokens, ${N} active features, ${graph.logits.length} logits, ${nTargets} × ${nSources} edges; completeness ${worst.toExponential(2)}`
		);
		expect(worst).toBeLessThan(1e-4);
	});

	it("reproduces onnxruntime's logits: frozen forward, replacement model with its errors, logit nodes", async () => {
		let frozen = 0;
		for (let i = 0; i < P * V; i++) frozen = Math.max(frozen, Math.abs(real[i] - forward.logits[i]));
		const last = real.subarray((P - 1) * V);
		const rep = interveneLogits(w, tokens, transcoders, [], 'replacement', forward).subarray((P - 1) * V);
		let replaced = 0;
		for (let v = 0; v < V; v++) replaced = Math.max(replaced, Math.abs(rep[v] - last[v]));
		const mean = last.reduce((a, b) => a + b, 0) / V;
		let nodes = 0;
		graph.logits.forEach((lg, k) => {
			let s = graph.bias[N + k];
			for (let j = 0; j < nSources; j++) s += edges[(N + k) * nSources + j];
			nodes = Math.max(nodes, Math.abs(s - (last[lg.token] - mean)));
		});
		console.log(
			`${name}: max |logit − onnxruntime|: frozen forward ${frozen.toExponential(2)}, replacement model ${replaced.toExponential(2)}, logit nodes ${nodes.toExponential(2)}`
		);
		expect(frozen).toBeLessThan(1e-4);
		expect(replaced).toBeLessThan(1e-4);
		expect(nodes).toBeLessThan(1e-4);
		// With no intervention, attention frozen or free, the real model runs: onnxruntime's logits again.
		for (const mode of ['frozen-attention', 'free'] as const) {
			const run = interveneLogits(w, tokens, transcoders, [], mode, forward);
			let d = 0;
			for (let i = 0; i < P * V; i++) d = Math.max(d, Math.abs(run[i] - real[i]));
			expect(d, mode).toBeLessThan(1e-4);
		}
	});

	it('gives feature and error edges as finite differences of the frozen forward (the backward passes against the forward)', () => {
		// The linear model the edges differentiate, run forward: patterns and norm scales frozen, every
		// feature held at its activation, each MLP its transcoder's output plus its error. Scaling one
		// source by 1 ± h moves each target's input by ± h · edge (exactly: the map is affine).
		const rep = buildReplacement(forward, transcoders);
		const acts = rep.transcoders.map((t, l) =>
			Array.from({ length: P }, (_, p) =>
				activate(t, preActivations(t, forward.mlpIn[l].subarray(p * w.config.dim, (p + 1) * w.config.dim)))
			)
		);
		const D = w.config.dim;
		const run = (scale: { feature?: number; error?: [number, number]; by: number }) => {
			const f = scale.feature !== undefined ? features[scale.feature] : null;
			const out = exportedForward(w, tokens, {
				patterns: forward.pattern,
				scales: forward,
				mlp: (l, mlpIn) => {
					const t = rep.transcoders[l];
					const o = new Float64Array(P * D);
					for (let p = 0; p < P; p++) {
						const a = acts[l][p].slice();
						if (f && f.layer === l && f.pos === p) a[f.feature] *= scale.by;
						const rec = reconstruct(t, mlpIn.subarray(p * D, (p + 1) * D), a);
						const e = scale.error && scale.error[0] === l && scale.error[1] === p ? scale.by : 1;
						for (let j = 0; j < D; j++) o[p * D + j] = rec[j] + e * rep.errors[l][p * D + j];
					}
					return o;
				}
			});
			const last = out.logits.subarray((P - 1) * V, P * V);
			const mean = last.reduce((a, b) => a + b, 0) / V;
			return [
				...features.map((g) => {
					const t = rep.transcoders[g.layer];
					let v = t.bEnc[g.feature];
					for (let j = 0; j < D; j++) v += t.wEnc[j * t.dSae + g.feature] * out.mlpIn[g.layer][g.pos * D + j];
					return v;
				}),
				...graph.logits.map((lg) => last[lg.token] - mean)
			];
		};
		const h = 0.5;
		let worst = 0;
		let largest = 0;
		const check = (col: number, s: { feature?: number; error?: [number, number] }) => {
			const [up, down] = [run({ ...s, by: 1 + h }), run({ ...s, by: 1 - h })];
			for (let t = 0; t < nTargets; t++) {
				const fd = (up[t] - down[t]) / (2 * h);
				worst = Math.max(worst, Math.abs(fd - edges[t * nSources + col]));
				largest = Math.max(largest, Math.abs(fd));
			}
		};
		// Error nodes of every layer at the first and last position, and features spread over the
		// layers: each check is two forward passes (GPT-2's carry 50,257 logits each).
		for (let l = 0; l < graph.nLayers; l++) for (const p of [0, P - 1]) check(N + l * P + p, { error: [l, p] });
		const step = Math.max(1, Math.floor(N / 6));
		for (let i = 0; i < N; i += step) check(i, { feature: i });
		console.log(
			`${name}: edges vs finite differences of the frozen forward: max |Δ| ${worst.toExponential(2)} (largest ${largest.toFixed(3)})`
		);
		expect(largest).toBeGreaterThan(0);
		expect(worst).toBeLessThan(1e-5 * Math.max(1, largest));
	});

	it('moves the replacement model by what the graph predicts (0.01 % nudges at three layers: no feature crosses its threshold)', () => {
		const weight = (i: number) => Math.abs(edges[N * nSources + i]);
		const picks = [0, 1, 2].map(
			(l) =>
				Array.from({ length: N }, (_, i) => i)
					.filter((i) => features[i].layer === l)
					.sort((a, b) => weight(b) - weight(a))[0]
		);
		const ivs: FeatureIntervention[] = picks.map((i) => ({ ...features[i], value: features[i].activation * 1.0001 }));
		const predicted = predictFromGraph(graph, ivs);
		const moved = interveneLogits(w, tokens, transcoders, ivs, 'replacement', forward);
		const demeaned = (x: Float64Array, t: number) => {
			const last = x.subarray((P - 1) * V, P * V);
			return last[t] - last.reduce((a, b) => a + b, 0) / V;
		};
		let worst = 0;
		let size = 0;
		graph.logits.forEach((lg, k) => {
			const d = demeaned(moved, lg.token) - demeaned(forward.logits, lg.token);
			worst = Math.max(worst, Math.abs(d - predicted[N + k]));
			size = Math.max(size, Math.abs(d));
		});
		console.log(
			`${name}: intervention moved logits by up to ${size.toExponential(2)}; graph's prediction off by ${worst.toExponential(2)}`
		);
		expect(size).toBeGreaterThan(1e-6);
		expect(worst).toBeLessThan(1e-3 * size + 1e-9);
	});
});

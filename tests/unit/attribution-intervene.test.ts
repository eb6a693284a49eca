import { describe, expect, it } from 'vitest';
import { readLlama2cCheckpoint } from '../../src/lib/engine/model/llama2c/checkpoint';
import { Llama2cTokenizer, BOS } from '../../src/lib/engine/model/llama2c/tokenizer';
import { ReferenceLlama } from '../../src/lib/engine/model/llama2c/reference-forward';
import { attribute } from '../../src/lib/engine/attribution/graph';
import {
	greedyWithInterventions,
	interveneLogits,
	predictFromGraph,
	type FeatureIntervention
} from '../../src/lib/engine/attribution/intervene';
import { randomTranscoders } from '../attribution-reference';
import { readArrayBuffer, stories260KDir } from '../fixtures';
import { argmax, maxAbsDiff } from '../numeric';

const weights = readLlama2cCheckpoint(readArrayBuffer(`${stories260KDir}/stories260K.bin`), 'stories260K.bin');
const tokenizer = new Llama2cTokenizer(readArrayBuffer(`${stories260KDir}/tok512.bin`), weights.config.vocabSize);
const tokens = [BOS, ...tokenizer.encode('Lily saw a', false)];
const V = weights.config.vocabSize;
const P = tokens.length;
const tcs = randomTranscoders(weights.config, 7);

describe('interventions on transcoder features', async () => {
	const { graph, forward } = await attribute(weights, tokens, tcs);
	const N = graph.features.length;
	const demeaned = (logits: Float64Array, t: number) => {
		const last = logits.subarray((P - 1) * V, P * V);
		return last[t] - last.reduce((a, b) => a + b, 0) / V;
	};

	it('with none, every mode gives the real model (the plain TS forward)', () => {
		const ref = new ReferenceLlama(weights);
		const real = new Float64Array(P * V);
		tokens.forEach((t, p) => real.set(ref.step(t), p * V));
		for (const mode of ['replacement', 'frozen-attention', 'free'] as const)
			expect(maxAbsDiff(interveneLogits(weights, tokens, tcs, [], mode, forward), real)).toBeLessThan(1e-4);
	});

	it('moves the logits of the replacement model by what the graph predicts (small changes, several layers)', () => {
		// At layers 0, 1 and 2, the feature with the largest direct edge to the top logit, each nudged
		// by 1 %: their effects also run through the later layers' features (paths of several edges).
		const top = N; // the top logit's target row
		const weight = (i: number) => Math.abs(graph.edges[top * graph.nSources + i]);
		const picks = [0, 1, 2].map(
			(l) =>
				Array.from({ length: N }, (_, i) => i)
					.filter((i) => graph.features[i].layer === l)
					.sort((a, b) => weight(b) - weight(a))[0]
		);
		const ivs: FeatureIntervention[] = picks.map((i) => ({ ...graph.features[i], value: graph.features[i].activation * 1.01 }));
		const predicted = predictFromGraph(graph, ivs);
		const moved = interveneLogits(weights, tokens, tcs, ivs, 'replacement', forward);
		let worst = 0;
		let size = 0;
		let directOnly = 0; // what ignoring the paths through later features would miss
		graph.logits.forEach((lg, k) => {
			const d = demeaned(moved, lg.token) - demeaned(forward.logits, lg.token);
			worst = Math.max(worst, Math.abs(d - predicted[N + k]));
			size = Math.max(size, Math.abs(d));
			const direct = picks.reduce((a, i) => a + graph.edges[(N + k) * graph.nSources + i] * 0.01, 0);
			directOnly = Math.max(directOnly, Math.abs(d - direct));
		});
		expect(directOnly).toBeGreaterThan(100 * worst);
		// With attention frozen but live norms and the real MLPs, the graph is only a first-order guide.
		const fa = interveneLogits(weights, tokens, tcs, ivs, 'frozen-attention', forward);
		const faErr = Math.max(
			...graph.logits.map((lg, k) => Math.abs(demeaned(fa, lg.token) - demeaned(forward.logits, lg.token) - predicted[N + k]))
		);
		console.log(
			`intervention (3 features +1 %): max |Δ demeaned logit| ${size.toExponential(2)}; graph's prediction off by ${worst.toExponential(2)} (replacement), ${faErr.toExponential(2)} (frozen attention, real MLPs)`
		);
		expect(size).toBeGreaterThan(1e-4);
		expect(worst).toBeLessThan(1e-6 * Math.max(1, size) + 1e-3 * size);
	});

	it('changes the greedy continuation when free, and a no-op intervention leaves llama2.c’s', () => {
		const steps = 6;
		const ref = new ReferenceLlama(weights);
		let next = 0;
		for (const t of tokens) next = argmax(ref.step(t));
		const plain: number[] = [];
		for (let s = 0; s < steps; s++) {
			plain.push(next);
			next = argmax(ref.step(next));
		}
		const last = graph.features.filter((f) => f.pos === P - 1);
		expect(
			greedyWithInterventions(
				weights,
				tokens,
				tcs,
				last.map((f) => ({ ...f, value: f.activation })),
				steps
			)
		).toEqual(plain);
		// Inject the strongest last-position feature of layer 3 at 40× its activation.
		const f = last.filter((g) => g.layer === 3).sort((a, b) => b.activation - a.activation)[0];
		const steered = greedyWithInterventions(weights, tokens, tcs, [{ ...f, value: 40 * f.activation }], steps);
		console.log(`greedy: "${tokenizer.decode(plain)}" → "${tokenizer.decode(steered)}"`);
		expect(steered).not.toEqual(plain);
	});
});

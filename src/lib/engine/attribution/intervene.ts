/**
 * Interventions on transcoder features: set (scale, ablate, inject) feature f at (layer, position)
 * and run the model again. Three ways to run it, from the graph's own world to the real model:
 *
 * - 'replacement': the local replacement model itself — attention patterns and norm scales frozen
 *   at their clean values, each MLP replaced by its transcoder (features recomputed from the new
 *   input, intervened ones set) plus its clean error. The graph is this model's linearisation, so
 *   `predictFromGraph` must give its response to first order (exactly, while no feature crosses its
 *   threshold).
 * - 'frozen-attention': the real model (real MLPs, live norms) with attention patterns frozen, the
 *   intervention added to the MLP's output as (new − old activation) · W_dec[f], as circuit-tracer's
 *   feature_intervention does; errors then move with the real MLP.
 * - 'free': the same with attention live too.
 */
import { headSize, kvDim } from '../model/llama2c/checkpoint';
import { frozenForward, matmulRows, rmsScale, type FrozenForward } from './frozen-forward';
import { exportedForward } from './exported-forward';
import type { DecoderWeights } from './exported-shape';
import { buildReplacement } from './replacement';
import { activate, preActivations, reconstruct, type Transcoder } from './transcoder';
import type { AttributionGraph } from './graph';

export interface FeatureIntervention {
	layer: number;
	pos: number;
	feature: number;
	/** The activation to set (0 ablates). */
	value: number;
}

export type InterventionMode = 'replacement' | 'frozen-attention' | 'free';

/** Logits at every position, [P · vocab], after the interventions. `cleanPass` is the prompt's frozen forward (patterns, scales, errors), computed here when not given and needed. */
export function interveneLogits(
	w: DecoderWeights,
	tokens: number[],
	transcoders: Transcoder[],
	interventions: FeatureIntervention[],
	mode: InterventionMode,
	cleanPass?: FrozenForward
): Float64Array {
	const c = w.config;
	const { dim, hiddenDim, nHeads, nKvHeads, nLayers, vocabSize } = c;
	const P = tokens.length;
	const hs = headSize(c);
	const kv = kvDim(c);
	const group = nHeads / nKvHeads;
	const tcs = [...transcoders].sort((a, b) => a.layer - b.layer);
	// Free attention freezes nothing: no clean pass needed (greedy decoding calls this every step).
	const clean = cleanPass ?? (mode === 'free' ? null : frozenForward(w, tokens));
	const errors = mode === 'replacement' ? buildReplacement(clean!, tcs).errors : [];
	const frozenA = mode !== 'free';
	const frozenS = mode === 'replacement';
	// Clean positions beyond the prompt the clean pass did not see cannot be frozen.
	if (frozenA && clean!.nPos < P) throw new Error(`interveneLogits: the clean pass covers ${clean!.nPos} positions, the run ${P}`);

	if (w.exported) return interveneExported(w, tokens, tcs, interventions, mode, clean, errors);

	const x = new Float64Array(P * dim);
	for (let p = 0; p < P; p++) for (let j = 0; j < dim; j++) x[p * dim + j] = w.tokenEmbedding[tokens[p] * dim + j];
	const xn = new Float64Array(P * dim);
	const norm = (g: Float32Array, frozen: Float64Array | null) => {
		for (let p = 0; p < P; p++) {
			const s = frozen ? frozen[p] : rmsScale(x, p * dim, dim, c.normEps);
			for (let j = 0; j < dim; j++) xn[p * dim + j] = g[j] * s * x[p * dim + j];
		}
	};
	for (let l = 0; l < nLayers; l++) {
		const L = w.layers[l];
		norm(L.rmsAtt, frozenS ? clean!.sAtt[l] : null);
		const v = matmulRows(xn, L.wv, P, dim, kv);
		let A: Float64Array;
		if (frozenA) A = clean!.pattern[l];
		else {
			// Live attention: recompute the pattern from this run's queries and keys (RoPE as run.c).
			const q = matmulRows(xn, L.wq, P, dim, dim);
			const k = matmulRows(xn, L.wk, P, dim, kv);
			for (let p = 0; p < P; p++)
				for (let i = 0; i < dim; i += 2) {
					const ang = p / Math.pow(c.ropeTheta, (i % hs) / hs);
					const [cs, sn] = [Math.cos(ang), Math.sin(ang)];
					for (const [vec, width] of i < kv ? [[q, dim] as const, [k, kv] as const] : [[q, dim] as const]) {
						const o = p * width + i;
						const [v0, v1] = [vec[o], vec[o + 1]];
						vec[o] = v0 * cs - v1 * sn;
						vec[o + 1] = v0 * sn + v1 * cs;
					}
				}
			A = new Float64Array(nHeads * P * P);
			for (let h = 0; h < nHeads; h++)
				for (let p = 0; p < P; p++) {
					const row = (h * P + p) * P;
					let max = -Infinity;
					for (let t = 0; t <= p; t++) {
						let s = 0;
						for (let i = 0; i < hs; i++) s += q[p * dim + h * hs + i] * k[t * kv + Math.floor(h / group) * hs + i];
						A[row + t] = s / Math.sqrt(hs);
						max = Math.max(max, A[row + t]);
					}
					let sum = 0;
					for (let t = 0; t <= p; t++) sum += A[row + t] = Math.exp(A[row + t] - max);
					for (let t = 0; t <= p; t++) A[row + t] /= sum;
				}
		}
		const z = new Float64Array(P * dim);
		for (let h = 0; h < nHeads; h++) {
			const kvh = Math.floor(h / group) * hs;
			for (let p = 0; p < P; p++)
				for (let t = 0; t <= p; t++) {
					const a = A[(h * P + p) * P + t];
					for (let i = 0; i < hs; i++) z[p * dim + h * hs + i] += a * v[t * kv + kvh + i];
				}
		}
		const attnOut = matmulRows(z, L.wo, P, dim, dim);
		for (let i = 0; i < P * dim; i++) x[i] += attnOut[i];

		norm(L.rmsFfn, frozenS ? clean!.sFfn[l] : null);
		const t = tcs[l];
		const here = interventions.filter((iv) => iv.layer === l);
		let mlpOut: Float64Array;
		if (mode === 'replacement') {
			mlpOut = new Float64Array(P * dim);
			for (let p = 0; p < P; p++) {
				const xin = xn.subarray(p * dim, (p + 1) * dim);
				const act = activate(t, preActivations(t, xin));
				for (const iv of here) if (iv.pos === p) act[iv.feature] = iv.value;
				const out = reconstruct(t, xin, act);
				for (let j = 0; j < dim; j++) mlpOut[p * dim + j] = out[j] + errors[l][p * dim + j];
			}
		} else {
			const h1 = matmulRows(xn, L.w1, P, dim, hiddenDim);
			const h3 = matmulRows(xn, L.w3, P, dim, hiddenDim);
			for (let i = 0; i < h1.length; i++) h1[i] = (h1[i] / (1 + Math.exp(-h1[i]))) * h3[i];
			mlpOut = matmulRows(h1, L.w2, P, hiddenDim, dim);
			for (const iv of here) {
				if (iv.pos >= P) continue;
				const act = activate(t, preActivations(t, xn.subarray(iv.pos * dim, (iv.pos + 1) * dim)))[iv.feature];
				for (let j = 0; j < dim; j++) mlpOut[iv.pos * dim + j] += (iv.value - act) * t.wDec[iv.feature * dim + j];
			}
		}
		for (let i = 0; i < P * dim; i++) x[i] += mlpOut[i];
	}
	norm(w.rmsFinal, frozenS ? clean!.sFinal : null);
	return matmulRows(xn, w.classifier, P, dim, vocabSize);
}

/** The same three modes on an export's forward (exported-forward.ts): what is frozen is given to it, and each MLP's output replaced. */
function interveneExported(
	w: DecoderWeights,
	tokens: number[],
	tcs: Transcoder[],
	interventions: FeatureIntervention[],
	mode: InterventionMode,
	clean: FrozenForward | null,
	errors: Float64Array[]
): Float64Array {
	const dim = w.config.dim;
	const P = tokens.length;
	const mlp = (l: number, xn: Float64Array, real: () => Float64Array) => {
		const t = tcs[l];
		const here = interventions.filter((iv) => iv.layer === l && iv.pos < P);
		if (mode === 'replacement') {
			const out = new Float64Array(P * dim);
			for (let p = 0; p < P; p++) {
				const xin = xn.subarray(p * dim, (p + 1) * dim);
				const act = activate(t, preActivations(t, xin));
				for (const iv of here) if (iv.pos === p) act[iv.feature] = iv.value;
				const rec = reconstruct(t, xin, act);
				for (let j = 0; j < dim; j++) out[p * dim + j] = rec[j] + errors[l][p * dim + j];
			}
			return out;
		}
		const out = real();
		for (const iv of here) {
			const act = activate(t, preActivations(t, xn.subarray(iv.pos * dim, (iv.pos + 1) * dim)))[iv.feature];
			for (let j = 0; j < dim; j++) out[iv.pos * dim + j] += (iv.value - act) * t.wDec[iv.feature * dim + j];
		}
		return out;
	};
	return exportedForward(w, tokens, {
		patterns: mode !== 'free' ? clean!.pattern : undefined,
		scales: mode === 'replacement' ? clean! : undefined,
		mlp
	}).logits;
}

/**
 * What the graph predicts an intervention does to each target's input, to first order: the change
 * δ_s = value − a_s of each intervened feature flows along the edges, which are per unit of the
 * source's activation edge/a_s; a downstream feature that stays active passes its pre-activation's
 * change on one for one (JumpReLU and ReLU have slope 1 above threshold). Targets in layer order,
 * so one sweep suffices. Returns Δinput per target (features, then logits: demeaned logits).
 */
export function predictFromGraph(g: AttributionGraph, interventions: FeatureIntervention[]): Float64Array {
	const N = g.features.length;
	const dAct = new Float64Array(N);
	const fixed = new Uint8Array(N);
	const index = new Map(g.features.map((f, i) => [`${f.layer}/${f.pos}/${f.feature}`, i]));
	for (const iv of interventions) {
		const i = index.get(`${iv.layer}/${iv.pos}/${iv.feature}`);
		if (i === undefined)
			throw new Error(`predictFromGraph: feature ${iv.feature} at layer ${iv.layer}, position ${iv.pos} is not a node of the graph`);
		dAct[i] = iv.value - g.features[i].activation;
		fixed[i] = 1;
	}
	const dInput = new Float64Array(g.nTargets);
	const order = Array.from({ length: N }, (_, i) => i).sort((a, b) => g.features[a].layer - g.features[b].layer);
	const pull = (row: number) => {
		let s = 0;
		for (let j = 0; j < N; j++) if (dAct[j] !== 0) s += (g.edges[row * g.nSources + j] / g.features[j].activation) * dAct[j];
		return s;
	};
	for (const i of order) {
		dInput[i] = pull(i);
		if (!fixed[i]) dAct[i] = dInput[i];
	}
	for (let k = 0; k < g.logits.length; k++) dInput[N + k] = pull(N + k);
	return dInput;
}

/**
 * Greedy continuation with interventions held at their prompt positions, attention free (the
 * positions it writes were never seen by a clean pass, so nothing there can be frozen). Recomputes
 * the prompt each step: meant for small models and a few tokens, beside the app's own generation.
 */
export function greedyWithInterventions(
	w: DecoderWeights,
	tokens: number[],
	transcoders: Transcoder[],
	interventions: FeatureIntervention[],
	steps: number
): number[] {
	const seq = [...tokens];
	const V = w.config.vocabSize;
	for (let s = 0; s < steps && seq.length < w.config.seqLen; s++) {
		const logits = interveneLogits(w, seq, transcoders, interventions, 'free');
		let best = 0;
		for (let v = 1; v < V; v++) if (logits[(seq.length - 1) * V + v] > logits[(seq.length - 1) * V + best]) best = v;
		seq.push(best);
	}
	return seq.slice(tokens.length);
}

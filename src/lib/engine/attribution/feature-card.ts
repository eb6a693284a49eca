/**
 * A transcoder feature's card, in the explorer's shape (sae/feature-pages.ts FeatureDetails) so the
 * graph page shows it with the explorer's FeatureCard: its activation at each prompt position (from
 * the frozen forward's hook_mlp_in), the tokens its decoder row promotes and suppresses directly
 * (W_dec[f] · diag(g_final) · W_Uᵀ, through the final norm's gain, as the explorer's feature logits),
 * and its nearest features in the same transcoder by decoder cosine.
 */
import type { LlamaWeights } from '../model/llama2c/checkpoint';
import type { FeatureDetails } from '../sae/feature-pages';
import type { FeatureLabel } from '../store/db';
import type { FrozenForward } from './frozen-forward';
import { activate, preActivations, type Transcoder } from './transcoder';

const top = (v: Float64Array, k: number, sign: 1 | -1) =>
	Array.from(v.keys())
		.sort((a, b) => sign * (v[b] - v[a]) || a - b)
		.slice(0, k)
		.map((id) => ({ id, value: v[id] }));

export function transcoderFeatureCard(
	w: LlamaWeights,
	fwd: FrozenForward,
	t: Transcoder,
	f: number,
	piece: (token: number) => string,
	label: FeatureLabel | null,
	k = 10
): FeatureDetails {
	const { dim, vocabSize: V } = w.config;
	const activations = Array.from({ length: fwd.nPos }, (_, p) => {
		const x = fwd.mlpIn[t.layer].subarray(p * dim, (p + 1) * dim);
		return activate(t, preActivations(t, x))[f];
	});
	const dec = t.wDec.subarray(f * t.dOut, (f + 1) * t.dOut);
	const logits = new Float64Array(V);
	for (let v = 0; v < V; v++) {
		let s = 0;
		for (let d = 0; d < dim; d++) s += dec[d] * w.rmsFinal[d] * w.classifier[v * dim + d];
		logits[v] = s;
	}
	const norm = (g: number) => {
		let s = 0;
		for (let d = 0; d < t.dOut; d++) s += t.wDec[g * t.dOut + d] ** 2;
		return Math.sqrt(s);
	};
	const own = norm(f) || 1;
	const cos = new Float64Array(t.dSae);
	for (let g = 0; g < t.dSae; g++) {
		if (g === f) {
			cos[g] = -Infinity;
			continue;
		}
		let s = 0;
		for (let d = 0; d < t.dOut; d++) s += dec[d] * t.wDec[g * t.dOut + d];
		cos[g] = s / (own * (norm(g) || 1));
	}
	const withPiece = (x: { id: number; value: number }) => ({ ...x, piece: piece(x.id) });
	return {
		feature: f,
		activations,
		positiveLogits: top(logits, k, 1).map(withPiece),
		negativeLogits: top(logits, k, -1).map(withPiece),
		nearest: top(cos, k, 1),
		label,
		density: null,
		corpus: null
	};
}

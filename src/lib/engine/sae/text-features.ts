/**
 * One analysed text's SAE activations, kept so that what is asked about it later needs no second
 * run of the model: every feature's activation at every token, stored sparsely (most are zero),
 * a feature's column of it (the card's "activation across the prompt"), and the features that fire
 * on the text with their max, sum and first-token activation (the ranked "which features fire on
 * this text" list, which the page sorts by max or mean, with or without BOS).
 */

/** Activations [tokens, dSae] with only the non-zero entries, token by token (CSR). */
export interface SparseActivations {
	tokens: number;
	dSae: number;
	/** Token t's entries are ids/values[offsets[t] .. offsets[t + 1]). */
	offsets: Uint32Array;
	ids: Uint32Array;
	values: Float32Array;
}

/** A feature that fires somewhere on the text. `max` and `sum` are over the tokens after the first (BOS), `first` is its activation there. */
export interface FeatureOnText {
	id: number;
	max: number;
	sum: number;
	first: number;
	density?: number;
}

export function sparsify(dense: Float32Array, tokens: number, dSae: number): SparseActivations {
	const offsets = new Uint32Array(tokens + 1);
	let n = 0;
	for (let i = 0; i < tokens * dSae; i++) if (dense[i] > 0) n++;
	const ids = new Uint32Array(n);
	const values = new Float32Array(n);
	let j = 0;
	for (let t = 0; t < tokens; t++) {
		const row = dense.subarray(t * dSae, (t + 1) * dSae);
		for (let f = 0; f < dSae; f++)
			if (row[f] > 0) {
				ids[j] = f;
				values[j++] = row[f];
			}
		offsets[t + 1] = j;
	}
	return { tokens, dSae, offsets, ids, values };
}

/** Feature f's activation at each token. */
export function featureColumn(a: SparseActivations, f: number): number[] {
	const out = new Array<number>(a.tokens).fill(0);
	for (let t = 0; t < a.tokens; t++)
		for (let j = a.offsets[t]; j < a.offsets[t + 1]; j++)
			if (a.ids[j] === f) {
				out[t] = a.values[j];
				break;
			}
	return out;
}

/** Every feature that fires on some token, with its statistics; strongest max first. */
export function featuresOnText(a: SparseActivations, density?: ArrayLike<number>): FeatureOnText[] {
	const byId = new Map<number, FeatureOnText>();
	for (let t = 0; t < a.tokens; t++)
		for (let j = a.offsets[t]; j < a.offsets[t + 1]; j++) {
			const id = a.ids[j];
			const v = a.values[j];
			let s = byId.get(id);
			if (!s) byId.set(id, (s = { id, max: 0, sum: 0, first: 0, ...(density ? { density: density[id] } : {}) }));
			if (t === 0) s.first = v;
			else {
				s.sum += v;
				if (v > s.max) s.max = v;
			}
		}
	return [...byId.values()].sort((x, y) => y.max - x.max || y.first - x.first || x.id - y.id);
}

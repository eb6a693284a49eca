/**
 * What a feature does, in plain TypeScript (the reference for gpu/feature-inspector.ts, and the
 * CPU path): its direct logit effects and its nearest features by decoder cosine similarity.
 */
import { topK, type Sae } from './sae';

export interface Unembedding {
	vocabSize: number;
	dModel: number;
	classifier: Float32Array; // [V, d_model]: logits = norm(x) · classifierᵀ
	normWeight: Float32Array | null; // the final norm's scale, folded into the effect
}

export interface RankedItem {
	id: number;
	value: number;
	density?: number; // fraction of corpus tokens it fires on, when a corpus run is known
}

export function logitEffectsReference(sae: Sae, f: number, u: Unembedding): Float32Array {
	const { dIn } = sae.cfg;
	const d = sae.w.wDec.subarray(f * dIn, (f + 1) * dIn);
	const out = new Float32Array(u.vocabSize);
	for (let v = 0; v < u.vocabSize; v++) {
		let acc = 0;
		for (let i = 0; i < dIn; i++) acc += d[i] * (u.normWeight ? u.normWeight[i] : 1) * u.classifier[v * dIn + i];
		out[v] = acc;
	}
	return out;
}

export function decoderCosinesReference(sae: Sae, f: number): Float32Array {
	const { dIn, dSae } = sae.cfg;
	const w = sae.w.wDec;
	const norm = (r: number) => Math.sqrt(w.subarray(r * dIn, (r + 1) * dIn).reduce((a, b) => a + b * b, 0));
	const nf = norm(f);
	const out = new Float32Array(dSae);
	for (let g = 0; g < dSae; g++) {
		let dot = 0;
		for (let i = 0; i < dIn; i++) dot += w[g * dIn + i] * w[f * dIn + i];
		const denom = norm(g) * nf;
		out[g] = denom > 0 ? dot / denom : 0;
	}
	return out;
}

export const ranked = (values: Float32Array, k: number): RankedItem[] => topK(values, k).map(([id, value]) => ({ id, value }));

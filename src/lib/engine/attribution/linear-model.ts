/**
 * The frozen replacement model as the backward passes see it: per layer, the linear maps that stay
 * (W_o, W_v with its frozen norm scale, W_skip with the MLP norm's) and the source vectors whose
 * direct effects become edges. Built once per prompt from the weights, the frozen forward and the
 * transcoders' active features; every backend (TS, WGSL) reads the same context.
 *
 * Sources written into the residual after layer l (at `hook_mlp_out`), in this order:
 *   the layer's active features (activation × W_dec[f], at the feature's position),
 *   its error nodes (error[l, p], one per position),
 *   its decoder bias b_dec at every position (not a node: it sums into the targets' constant term).
 * Token embeddings are the sources at the bottom of the residual stream.
 */
import { headSize, type LlamaWeights } from '../model/llama2c/checkpoint';
import type { FrozenForward } from './frozen-forward';
import type { ReplacementState } from './replacement';

export interface SourceBlock {
	/** [n × dim] vectors, each written at position pos[s]. */
	vectors: Float64Array;
	pos: Int32Array;
	/** Rows [0, nFeatures) are feature nodes, then nPos error nodes, then nPos bias rows (layers only). */
	nFeatures: number;
}

export interface LinearLayer {
	wo: Float32Array; // [dim, dim]
	wv: Float32Array; // [kvDim, dim]
	wSkip?: Float32Array; // [dim, dim] (out, in)
	/** g_att[i] · s_att[p] at [p · dim + i]: attention's frozen input norm, as a diagonal per position. */
	attnScale: Float64Array;
	/** g_ffn[i] · s_ffn[p]: the MLP's frozen input norm. */
	ffnScale: Float64Array;
	pattern: Float64Array; // [nHeads, P, P]
	sources: SourceBlock;
}

export interface LinearContext {
	nPos: number;
	dim: number;
	nLayers: number;
	nHeads: number;
	nKvHeads: number;
	headSize: number;
	layers: LinearLayer[];
	tokens: SourceBlock;
	/** g_final[i] · s_final[P − 1]: the final norm at the last position, where logits are read. */
	finalScale: Float64Array;
}

function diag(g: Float32Array, s: Float64Array, dim: number): Float64Array {
	const out = new Float64Array(s.length * dim);
	for (let p = 0; p < s.length; p++) for (let i = 0; i < dim; i++) out[p * dim + i] = g[i] * s[p];
	return out;
}

export function linearContext(w: LlamaWeights, fwd: FrozenForward, rep: ReplacementState): LinearContext {
	const { nPos: P, dim, nLayers } = fwd;
	const layers: LinearLayer[] = [];
	for (let l = 0; l < nLayers; l++) {
		const t = rep.transcoders[l];
		const feats = rep.features.filter((f) => f.layer === l);
		const n = feats.length + 2 * P;
		const vectors = new Float64Array(n * dim);
		const pos = new Int32Array(n);
		feats.forEach((f, s) => {
			pos[s] = f.pos;
			for (let d = 0; d < dim; d++) vectors[s * dim + d] = f.activation * t.wDec[f.feature * dim + d];
		});
		for (let p = 0; p < P; p++) {
			const e = feats.length + p;
			const b = feats.length + P + p;
			pos[e] = p;
			pos[b] = p;
			vectors.set(rep.errors[l].subarray(p * dim, (p + 1) * dim), e * dim);
			for (let d = 0; d < dim; d++) vectors[b * dim + d] = t.bDec[d];
		}
		const L = w.layers[l];
		layers.push({
			wo: L.wo,
			wv: L.wv,
			wSkip: t.wSkip,
			attnScale: diag(L.rmsAtt, fwd.sAtt[l], dim),
			ffnScale: diag(L.rmsFfn, fwd.sFfn[l], dim),
			pattern: fwd.pattern[l],
			sources: { vectors, pos, nFeatures: feats.length }
		});
	}
	const tokVectors = new Float64Array(P * dim);
	for (let p = 0; p < P; p++) for (let d = 0; d < dim; d++) tokVectors[p * dim + d] = w.tokenEmbedding[fwd.tokens[p] * dim + d];
	const finalScale = new Float64Array(dim);
	for (let i = 0; i < dim; i++) finalScale[i] = w.rmsFinal[i] * fwd.sFinal[P - 1];
	return {
		nPos: P,
		dim,
		nLayers,
		nHeads: w.config.nHeads,
		nKvHeads: w.config.nKvHeads,
		headSize: headSize(w.config),
		layers,
		tokens: { vectors: tokVectors, pos: Int32Array.from({ length: P }, (_, p) => p), nFeatures: 0 },
		finalScale
	};
}

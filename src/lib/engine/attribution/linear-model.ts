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
 * Token embeddings are the sources at the bottom of the residual stream (times an export's
 * embedding scale).
 *
 * An export's post-attention norm (Gemma 3: attn_out[p] = g ⊙ s[p] ⊙ W_o z[p], s frozen) folds into
 * what is already here, so no backend needs to know of it: g into W_o's rows (diag(g) W_o), and the
 * per-position s[p] into the pattern's query rows (s[p] · A[h, p, t]), since z[p] = Σ_t A[h,p,t] v[t].
 *
 * LayerNorm (GPT-2) with its scale frozen is n(x) = s[p] · diag(g) C x + β, C = I − 11ᵀ/d the mean's
 * removal: linear plus a constant. The linear part folds into the weights that read it, W_v and
 * W_skip become W diag(g) C and their scale s[p] alone (`skipScale` for the skip, since `ffnScale`
 * stays g ⊙ s[p] for the targets' read-out), and the targets' read-outs are centred (`centred`). The
 * constants (every β, every projection bias, W_skip β) are what the frozen replacement model gives
 * from a zero residual with no node active: `constants`, added to each target's bias. Learned
 * positions are part of each token's embedding node.
 */
import { exportedForward } from './exported-forward';
import { matmulRows } from './frozen-forward';
import type { DecoderWeights } from './exported-shape';
import { attnHeadSize } from './exported-shape';
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
	wo: Float32Array; // [dim, nHeads · headSize]
	wv: Float32Array; // [kvDim, dim]
	wSkip?: Float32Array; // [dim, dim] (out, in)
	/** g_att[i] · s_att[p] at [p · dim + i]: attention's frozen input norm, as a diagonal per position. */
	attnScale: Float64Array;
	/** g_ffn[i] · s_ffn[p]: the MLP's frozen input norm. */
	ffnScale: Float64Array;
	/** The skip's scale where it differs from ffnScale (LayerNorm: s_ffn[p] alone, g folded into W_skip). */
	skipScale?: Float64Array;
	/** [nHeads, P, P]: the frozen pattern (times an export's frozen post-attention norm scale at its query). */
	pattern: Float64Array;
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
	/** LayerNorm: the targets' read-out vectors are centred (C = I − 11ᵀ/d after the norm's diagonal). */
	centred?: boolean;
	/** The affine model's constant terms: hook_mlp_in per layer [P · dim], the final norm's output at the last position [dim]. */
	constants?: { mlpIn: Float64Array[]; final: Float64Array };
}

/** W diag(g) C for W [rows, dim] (out, in): g on its columns, then each row's mean removed. */
function foldLayerNorm(w: Float32Array, g: Float32Array, dim: number): Float32Array {
	const out = new Float32Array(w.length);
	const row = new Float64Array(dim);
	for (let r = 0; r < w.length / dim; r++) {
		let mean = 0;
		for (let j = 0; j < dim; j++) mean += (row[j] = w[r * dim + j] * g[j]) / dim;
		for (let j = 0; j < dim; j++) out[r * dim + j] = row[j] - mean;
	}
	return out;
}

function diag(g: Float32Array, s: Float64Array, dim: number): Float64Array {
	const out = new Float64Array(s.length * dim);
	for (let p = 0; p < s.length; p++) for (let i = 0; i < dim; i++) out[p * dim + i] = g[i] * s[p];
	return out;
}

/** W_o with a post-attention norm's gain on its rows, and the pattern with the frozen scale on its query rows. */
function foldPostAttention(wo: Float32Array, g: Float32Array, A: Float64Array, s: Float64Array, P: number) {
	const cols = wo.length / g.length;
	const w = Float32Array.from(wo, (v, k) => v * g[Math.floor(k / cols)]);
	const pattern = Float64Array.from(A, (a, k) => a * s[Math.floor(k / P) % P]);
	return { wo: w, pattern };
}

export function linearContext(w: DecoderWeights, fwd: FrozenForward, rep: ReplacementState): LinearContext {
	const { nPos: P, dim, nLayers } = fwd;
	const ln = !!w.exported?.layerNorm;
	/** s[p] alone at every [p · dim + i], for a LayerNorm's folded weights. */
	const scalarDiag = (s: Float64Array) => Float64Array.from({ length: P * dim }, (_, k) => s[Math.floor(k / dim)]);
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
		const post = w.exported?.layers[l].postAttnNorm;
		const folded = post ? foldPostAttention(L.wo, post, fwd.pattern[l], fwd.sPostAttn![l], P) : null;
		layers.push({
			wo: folded?.wo ?? L.wo,
			wv: ln ? foldLayerNorm(L.wv, L.rmsAtt, dim) : L.wv,
			wSkip: ln && t.wSkip ? foldLayerNorm(t.wSkip, L.rmsFfn, dim) : t.wSkip,
			attnScale: ln ? scalarDiag(fwd.sAtt[l]) : diag(L.rmsAtt, fwd.sAtt[l], dim),
			ffnScale: diag(L.rmsFfn, fwd.sFfn[l], dim),
			skipScale: ln ? scalarDiag(fwd.sFfn[l]) : undefined,
			pattern: folded?.pattern ?? fwd.pattern[l],
			sources: { vectors, pos, nFeatures: feats.length }
		});
	}
	const tokVectors = new Float64Array(P * dim);
	for (let p = 0; p < P; p++) for (let d = 0; d < dim; d++) tokVectors[p * dim + d] = w.tokenEmbedding[fwd.tokens[p] * dim + d];
	// An export's embedding scale (Gemma's √d) is part of what each token writes into the residual.
	const embedScale = w.exported?.embedScale ?? 1;
	if (embedScale !== 1) for (let i = 0; i < tokVectors.length; i++) tokVectors[i] *= embedScale;
	// Learned positions (GPT-2): what each position writes is part of its token's node.
	const positions = w.exported?.positions;
	if (positions) for (let i = 0; i < tokVectors.length; i++) tokVectors[i] += positions[i];
	const finalScale = new Float64Array(dim);
	for (let i = 0; i < dim; i++) finalScale[i] = w.rmsFinal[i] * fwd.sFinal[P - 1];
	return {
		nPos: P,
		dim,
		nLayers,
		nHeads: w.config.nHeads,
		nKvHeads: w.config.nKvHeads,
		headSize: attnHeadSize(w),
		layers,
		tokens: { vectors: tokVectors, pos: Int32Array.from({ length: P }, (_, p) => p), nFeatures: 0 },
		finalScale,
		centred: ln || undefined,
		constants: hasConstants(w) ? constantTerms(w, fwd, rep) : undefined
	};
}

/** Whether the export has any constant term on the residual paths (β, projection biases): Llama and Gemma 3 have none. */
function hasConstants(w: DecoderWeights): boolean {
	const e = w.exported;
	return !!e && (!!e.finalNormBias || e.layers.some((l) => l.attnNormBias || l.ffnNormBias || l.bv || l.bo));
}

/**
 * The frozen replacement model run from a zero residual with every node silent (no token, feature,
 * error or b_dec: those are sources, in the backward passes): patterns and norm scales frozen, each
 * MLP only its transcoder's skip. What reaches hook_mlp_in and the final norm's output is constant.
 */
function constantTerms(w: DecoderWeights, fwd: FrozenForward, rep: ReplacementState) {
	const { nPos: P, dim } = fwd;
	const run = exportedForward(w, fwd.tokens, {
		noEmbedding: true,
		patterns: fwd.pattern,
		scales: fwd,
		mlp: (l, mlpIn) => {
			const skip = rep.transcoders[l].wSkip;
			return skip ? matmulRows(mlpIn, skip, P, dim, dim) : new Float64Array(P * dim);
		}
	});
	return { mlpIn: run.mlpIn, final: run.finalNormed!.subarray((P - 1) * dim, P * dim) };
}

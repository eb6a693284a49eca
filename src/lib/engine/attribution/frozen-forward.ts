/**
 * The forward pass the attribution freezes: the real llama2.c model (RMSNorm, RoPE, grouped-query
 * attention, SwiGLU) over the whole prompt at once, in float64, recording what the local replacement
 * model holds fixed — every attention pattern and every RMSNorm scale 1/rms(x) — and the tensors the
 * transcoders read and replace: `hook_mlp_in` and `hook_mlp_out` at each layer and position.
 *
 * With those frozen, each layer is linear in the residual:
 *   attention:  attn_out[p] = W_o · concat_h Σ_t A[h,p,t] · W_v (g_att ⊙ s_att[t] ⊙ x[t])
 *   MLP input:  mlp_in[p]   = g_ffn ⊙ s_ffn[p] ⊙ x_mid[p]
 *   final norm: logits[p]   = W_U · (g_final ⊙ s_final[p] ⊙ x[p])
 * which is what `backward.ts` differentiates. RoPE only touches queries and keys, so once A is
 * frozen it plays no part in the linear paths. An export's weights (with `exported`) run through
 * exported-forward.ts instead, which records the same things.
 */
import { headSize, kvDim } from '../model/llama2c/checkpoint';
import { LoupeError } from '../errors';
import type { DecoderWeights } from './exported-shape';
import { exportedForward } from './exported-forward';

export interface FrozenForward {
	tokens: number[];
	nPos: number;
	dim: number;
	nLayers: number;
	/** Attention patterns, [layer][head · P · P] with A[h, p, t] at (h·P + p)·P + t (0 for t > p). */
	pattern: Float64Array[];
	/** RMSNorm scales 1/sqrt(mean(x²) + eps), [layer][P], before attention and before the MLP. */
	sAtt: Float64Array[];
	sFfn: Float64Array[];
	/** An export's post-attention norm scales (Gemma 3's, after W_o), [layer][P]; absent for llama2.c, all 0 where a layer has none. */
	sPostAttn?: Float64Array[];
	/** The final norm's scale, [P]. */
	sFinal: Float64Array;
	/** `blocks.L.hook_mlp_in` and `blocks.L.hook_mlp_out`, [layer][P · dim]. */
	mlpIn: Float64Array[];
	mlpOut: Float64Array[];
	/** An export's `blocks.L.hook_resid_pre`, [layer][P · dim] (absent for llama2.c). */
	residPre?: Float64Array[];
	/** The residual stream after the last layer, [P · dim] (before the final norm). */
	residFinal: Float64Array;
	/** An export's final norm output (what W_U reads), [P · dim] (absent for llama2.c). */
	finalNormed?: Float64Array;
	/** Logits at every position, [P · vocab]. */
	logits: Float64Array;
}

export function rmsScale(x: Float64Array, off: number, dim: number, eps: number): number {
	let ss = 0;
	for (let j = 0; j < dim; j++) ss += x[off + j] * x[off + j];
	return 1 / Math.sqrt(ss / dim + eps);
}

/** out[r, i] = Σ_j w[i, j] x[r, j] for each of `rows` rows; w is [d, n] (out, in) as llama2.c stores it. */
export function matmulRows(x: Float64Array, w: Float32Array, rows: number, n: number, d: number): Float64Array {
	const out = new Float64Array(rows * d);
	for (let r = 0; r < rows; r++)
		for (let i = 0; i < d; i++) {
			let v = 0;
			const wr = i * n;
			const xr = r * n;
			for (let j = 0; j < n; j++) v += w[wr + j] * x[xr + j];
			out[r * d + i] = v;
		}
	return out;
}

export function frozenForward(w: DecoderWeights, tokens: number[]): FrozenForward {
	const c = w.config;
	const { dim, hiddenDim, nHeads, nKvHeads, nLayers, vocabSize } = c;
	const P = tokens.length;
	if (P === 0) throw new LoupeError('model-failed', 'The prompt has no tokens to attribute.', 'Type a prompt first.');
	if (P > c.seqLen)
		throw new LoupeError('model-failed', `The prompt has ${P} tokens; the model reads at most ${c.seqLen}.`, 'Shorten the prompt.');
	for (const t of tokens)
		if (!Number.isInteger(t) || t < 0 || t >= vocabSize)
			throw new LoupeError(
				'model-failed',
				`Token id ${t} is outside the model's vocabulary of ${vocabSize}.`,
				"Tokenize the prompt with this model's tokenizer."
			);
	// An export's forward differs where its shape says (exported-forward.ts); a checkpoint's runs below, as run.c.
	if (w.exported) return exportedForward(w, tokens);
	const hs = headSize(c);
	const kv = kvDim(c);
	const kvMul = nHeads / nKvHeads;

	const x = new Float64Array(P * dim);
	for (let p = 0; p < P; p++) for (let j = 0; j < dim; j++) x[p * dim + j] = w.tokenEmbedding[tokens[p] * dim + j];

	const rec: FrozenForward = {
		tokens: [...tokens],
		nPos: P,
		dim,
		nLayers,
		pattern: [],
		sAtt: [],
		sFfn: [],
		sFinal: new Float64Array(P),
		mlpIn: [],
		mlpOut: [],
		residFinal: x,
		logits: new Float64Array(P * vocabSize)
	};
	const xn = new Float64Array(P * dim);
	const normInto = (g: Float32Array, s: Float64Array) => {
		for (let p = 0; p < P; p++) {
			s[p] = rmsScale(x, p * dim, dim, c.normEps);
			for (let j = 0; j < dim; j++) xn[p * dim + j] = g[j] * s[p] * x[p * dim + j];
		}
	};

	for (let l = 0; l < nLayers; l++) {
		const L = w.layers[l];
		const sAtt = new Float64Array(P);
		normInto(L.rmsAtt, sAtt);
		const q = matmulRows(xn, L.wq, P, dim, dim);
		const k = matmulRows(xn, L.wk, P, dim, kv);
		const v = matmulRows(xn, L.wv, P, dim, kv);
		// RoPE on interleaved pairs (i, i+1) of each head, as run.c.
		for (let p = 0; p < P; p++)
			for (let i = 0; i < dim; i += 2) {
				const a = p / Math.pow(c.ropeTheta, (i % hs) / hs);
				const [cs, sn] = [Math.cos(a), Math.sin(a)];
				for (const [vec, width] of i < kv ? [[q, dim] as const, [k, kv] as const] : [[q, dim] as const]) {
					const o = p * width + i;
					const [v0, v1] = [vec[o], vec[o + 1]];
					vec[o] = v0 * cs - v1 * sn;
					vec[o + 1] = v0 * sn + v1 * cs;
				}
			}
		const A = new Float64Array(nHeads * P * P);
		const z = new Float64Array(P * dim);
		for (let h = 0; h < nHeads; h++) {
			const kvh = Math.floor(h / kvMul) * hs;
			for (let p = 0; p < P; p++) {
				const row = (h * P + p) * P;
				let max = -Infinity;
				for (let t = 0; t <= p; t++) {
					let s = 0;
					for (let i = 0; i < hs; i++) s += q[p * dim + h * hs + i] * k[t * kv + kvh + i];
					A[row + t] = s / Math.sqrt(hs);
					if (A[row + t] > max) max = A[row + t];
				}
				let sum = 0;
				for (let t = 0; t <= p; t++) sum += A[row + t] = Math.exp(A[row + t] - max);
				for (let t = 0; t <= p; t++) {
					A[row + t] /= sum;
					for (let i = 0; i < hs; i++) z[p * dim + h * hs + i] += A[row + t] * v[t * kv + kvh + i];
				}
			}
		}
		const attnOut = matmulRows(z, L.wo, P, dim, dim);
		for (let i = 0; i < P * dim; i++) x[i] += attnOut[i];

		const sFfn = new Float64Array(P);
		normInto(L.rmsFfn, sFfn);
		const mlpIn = xn.slice();
		const h1 = matmulRows(mlpIn, L.w1, P, dim, hiddenDim);
		const h3 = matmulRows(mlpIn, L.w3, P, dim, hiddenDim);
		for (let i = 0; i < h1.length; i++) h1[i] = (h1[i] / (1 + Math.exp(-h1[i]))) * h3[i];
		const mlpOut = matmulRows(h1, L.w2, P, hiddenDim, dim);
		for (let i = 0; i < P * dim; i++) x[i] += mlpOut[i];
		rec.pattern.push(A);
		rec.sAtt.push(sAtt);
		rec.sFfn.push(sFfn);
		rec.mlpIn.push(mlpIn);
		rec.mlpOut.push(mlpOut);
	}
	normInto(w.rmsFinal, rec.sFinal);
	rec.logits = matmulRows(xn, w.classifier, P, dim, vocabSize);
	return rec;
}

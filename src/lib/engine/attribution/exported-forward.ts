/**
 * The forward pass of an exported decoder (weights traced by model/onnx/decoder-weights.ts), in
 * float64 over the whole prompt, recording what the attribution freezes — attention patterns, every
 * RMSNorm scale on the residual paths (before attention, Gemma 3's after W_o, before the MLP, the
 * final one) — and hook_mlp_in / hook_mlp_out. The same function runs the interventions: patterns
 * and scales can be given frozen, and each MLP's output replaced (a transcoder plus its error).
 *
 * It differs from llama2.c's (frozen-forward.ts, which stays as it was for checkpoints) only where
 * `exported` says: head size and attention scale, RoPE frequencies and window per layer, q/k norms,
 * the embedding scale, the activation, and the sandwich norms. RoPE is on llama2.c's interleaved
 * pairs: decoder-weights.ts permuted W_q and W_k so that this is Hugging Face's rotate_half.
 */
import type { FrozenForward } from './frozen-forward';
import { matmulRows, rmsScale } from './frozen-forward';
import type { DecoderWeights, ExportedShape } from './exported-shape';

export interface ExportedRun {
	/** Attention patterns to use instead of computing them ([layer][head · P · P]). */
	patterns?: Float64Array[];
	/** Norm scales to use instead of computing them (the replacement model's frozen norms). */
	scales?: Pick<FrozenForward, 'sAtt' | 'sFfn' | 'sFinal' | 'sPostAttn'>;
	/** MLP l's output from its input (hook_mlp_in, [P · dim]); `real` computes the model's own. */
	mlp?: (l: number, mlpIn: Float64Array, real: () => Float64Array) => Float64Array;
	/** Start from a zero residual (no token or position embedding): with everything else frozen, what the constant terms alone give. */
	noEmbedding?: boolean;
}

const GELU_C = Math.sqrt(2 / Math.PI);

function activation(kind: ExportedShape['mlpActivation'], x: number): number {
	return kind === 'silu' ? x / (1 + Math.exp(-x)) : 0.5 * x * (1 + Math.tanh(GELU_C * (x + 0.044715 * x * x * x)));
}

/** RMSNorm of each `hs`-wide head of each row, in place: Gemma 3's q_norm / k_norm. */
function headNorm(x: Float64Array, rows: number, width: number, hs: number, g: Float32Array, eps: number) {
	for (let r = 0; r < rows; r++)
		for (let o = r * width; o < (r + 1) * width; o += hs) {
			const s = rmsScale(x, o, hs, eps);
			for (let i = 0; i < hs; i++) x[o + i] = g[i] * s * x[o + i];
		}
}

/** RoPE on interleaved pairs: pair j of each head turns by p · invFreq[j]. */
function rope(x: Float64Array, P: number, width: number, hs: number, invFreq: Float64Array) {
	for (let p = 0; p < P; p++)
		for (let j = 0; j < hs / 2; j++) {
			const a = p * invFreq[j];
			const [cs, sn] = [Math.cos(a), Math.sin(a)];
			for (let o = p * width + 2 * j; o < (p + 1) * width; o += hs) {
				const [v0, v1] = [x[o], x[o + 1]];
				x[o] = v0 * cs - v1 * sn;
				x[o + 1] = v0 * sn + v1 * cs;
			}
		}
}

export function exportedForward(w: DecoderWeights, tokens: number[], run: ExportedRun = {}): FrozenForward {
	const e = w.exported!;
	const c = w.config;
	const { dim, hiddenDim, nHeads, nKvHeads, nLayers, vocabSize } = c;
	const P = tokens.length;
	const hs = e.headSize;
	const qDim = nHeads * hs;
	const kv = nKvHeads * hs;
	const group = nHeads / nKvHeads;
	const eps = c.normEps;

	const x = new Float64Array(P * dim);
	if (!run.noEmbedding)
		for (let p = 0; p < P; p++)
			for (let j = 0; j < dim; j++)
				x[p * dim + j] = w.tokenEmbedding[tokens[p] * dim + j] * e.embedScale + (e.positions ? e.positions[p * dim + j] : 0);
	const rec: FrozenForward = {
		tokens: [...tokens],
		nPos: P,
		dim,
		nLayers,
		pattern: [],
		sAtt: [],
		sFfn: [],
		sPostAttn: [],
		residPre: [],
		sFinal: new Float64Array(P),
		mlpIn: [],
		mlpOut: [],
		residFinal: x,
		logits: new Float64Array(0)
	};
	/**
	 * g ⊙ s[p] ⊙ src[p] (RMSNorm) or g ⊙ s[p] ⊙ (src[p] − mean) + β (LayerNorm) into a new array, the
	 * scale s computed into `s` (or read from `frozen`); the mean is never frozen: centring is linear.
	 */
	const norm = (src: Float64Array, g: Float32Array, s: Float64Array, frozen?: Float64Array, beta?: Float32Array) => {
		const out = new Float64Array(P * dim);
		const c = new Float64Array(dim);
		for (let p = 0; p < P; p++) {
			let mean = 0;
			if (e.layerNorm) for (let j = 0; j < dim; j++) mean += src[p * dim + j] / dim;
			for (let j = 0; j < dim; j++) c[j] = src[p * dim + j] - mean;
			s[p] = frozen ? frozen[p] : rmsScale(c, 0, dim, eps);
			for (let j = 0; j < dim; j++) out[p * dim + j] = g[j] * s[p] * c[j] + (beta ? beta[j] : 0);
		}
		return out;
	};
	const addBias = (y: Float64Array, b: Float32Array | undefined, width: number) => {
		if (b) for (let i = 0; i < y.length; i++) y[i] += b[i % width];
		return y;
	};

	for (let l = 0; l < nLayers; l++) {
		const L = w.layers[l];
		const E = e.layers[l];
		rec.residPre!.push(x.slice());
		const sAtt = new Float64Array(P);
		const xn = norm(x, L.rmsAtt, sAtt, run.scales?.sAtt[l], E.attnNormBias);
		const v = addBias(matmulRows(xn, L.wv, P, dim, kv), E.bv, kv);
		let A = run.patterns?.[l];
		if (!A) {
			const q = addBias(matmulRows(xn, L.wq, P, dim, qDim), E.bq, qDim);
			const k = addBias(matmulRows(xn, L.wk, P, dim, kv), E.bk, kv);
			if (E.qNorm) headNorm(q, P, qDim, hs, E.qNorm, eps);
			if (E.kNorm) headNorm(k, P, kv, hs, E.kNorm, eps);
			if (E.invFreq.length) {
				rope(q, P, qDim, hs, E.invFreq);
				rope(k, P, kv, hs, E.invFreq);
			}
			A = new Float64Array(nHeads * P * P);
			for (let h = 0; h < nHeads; h++) {
				const kvh = Math.floor(h / group) * hs;
				for (let p = 0; p < P; p++) {
					const row = (h * P + p) * P;
					const t0 = E.window > 0 ? Math.max(0, p - E.window + 1) : 0;
					let max = -Infinity;
					for (let t = t0; t <= p; t++) {
						let s = 0;
						for (let i = 0; i < hs; i++) s += q[p * qDim + h * hs + i] * k[t * kv + kvh + i];
						A[row + t] = s * e.attnScale;
						if (A[row + t] > max) max = A[row + t];
					}
					let sum = 0;
					for (let t = t0; t <= p; t++) sum += A[row + t] = Math.exp(A[row + t] - max);
					for (let t = t0; t <= p; t++) A[row + t] /= sum;
				}
			}
		}
		const z = new Float64Array(P * qDim);
		for (let h = 0; h < nHeads; h++) {
			const kvh = Math.floor(h / group) * hs;
			for (let p = 0; p < P; p++)
				for (let t = 0; t <= p; t++) {
					const a = A[(h * P + p) * P + t];
					if (a === 0) continue;
					for (let i = 0; i < hs; i++) z[p * qDim + h * hs + i] += a * v[t * kv + kvh + i];
				}
		}
		let attnOut = addBias(matmulRows(z, L.wo, P, qDim, dim), E.bo, dim);
		const sPost = new Float64Array(P);
		if (E.postAttnNorm) attnOut = norm(attnOut, E.postAttnNorm, sPost, run.scales?.sPostAttn?.[l]);
		for (let i = 0; i < P * dim; i++) x[i] += attnOut[i];

		const sFfn = new Float64Array(P);
		const mlpIn = norm(x, L.rmsFfn, sFfn, run.scales?.sFfn[l], E.ffnNormBias);
		const real = () => {
			const h1 = addBias(matmulRows(mlpIn, L.w1, P, dim, hiddenDim), E.b1, hiddenDim);
			const h3 = e.mlpGated ? matmulRows(mlpIn, L.w3, P, dim, hiddenDim) : null;
			for (let i = 0; i < h1.length; i++) h1[i] = activation(e.mlpActivation, h1[i]) * (h3 ? h3[i] : 1);
			const out = addBias(matmulRows(h1, L.w2, P, hiddenDim, dim), E.b2, dim);
			// The post-feedforward norm is inside what a transcoder replaces: never frozen.
			return E.postFfnNorm ? norm(out, E.postFfnNorm, new Float64Array(P)) : out;
		};
		const mlpOut = run.mlp ? run.mlp(l, mlpIn, real) : real();
		for (let i = 0; i < P * dim; i++) x[i] += mlpOut[i];
		rec.pattern.push(A);
		rec.sAtt.push(sAtt);
		rec.sPostAttn!.push(sPost);
		rec.sFfn.push(sFfn);
		rec.mlpIn.push(mlpIn);
		rec.mlpOut.push(mlpOut);
	}
	const xf = norm(x, w.rmsFinal, rec.sFinal, run.scales?.sFinal, e.finalNormBias);
	rec.finalNormed = xf;
	rec.logits = matmulRows(xf, w.classifier, P, dim, vocabSize);
	return rec;
}

/**
 * A plain TypeScript forward pass of a llama2.c model, written after run.c's `forward`, one
 * position at a time with a KV cache. It shares no code with the ONNX builder: tests use it as the
 * independent reference for the graph Loupe builds (and it can read the residual stream at any
 * `blocks.L.hook_resid_pre/post`, and the tensors at `hook_attn_out`, `hook_mlp_in` and
 * `hook_mlp_out` inside each layer, which tests of hooks and steering compare against).
 */
import { headSize, kvDim, type LlamaWeights } from './checkpoint';

export type SublayerHook = 'attn_out' | 'mlp_in' | 'mlp_out';

function rmsnorm(out: Float32Array, x: Float32Array, w: Float32Array, eps: number) {
	let ss = 0;
	for (let j = 0; j < x.length; j++) ss += x[j] * x[j];
	ss = 1 / Math.sqrt(ss / x.length + eps);
	for (let j = 0; j < x.length; j++) out[j] = w[j] * (ss * x[j]);
}

/** out[i] = sum_j w[i, j] x[j]; w is [d, n] row-major, as run.c's matmul. */
function matmul(out: Float32Array, x: Float32Array, w: Float32Array, n: number, d: number) {
	for (let i = 0; i < d; i++) {
		let v = 0;
		const row = i * n;
		for (let j = 0; j < n; j++) v += w[row + j] * x[j];
		out[i] = v;
	}
}

export class ReferenceLlama {
	private keyCache: Float32Array;
	private valueCache: Float32Array;
	/** Residual stream captured at each layer boundary b (b = 0..nLayers) for the last position. */
	readonly residual: Float32Array[];
	/** What attention adds, the normalised MLP input and what the MLP adds, per layer, for the last position. */
	readonly sublayer: Record<SublayerHook, Float32Array>[];
	pos = 0;

	constructor(readonly w: LlamaWeights) {
		const c = w.config;
		this.keyCache = new Float32Array(c.nLayers * c.seqLen * kvDim(c));
		this.valueCache = new Float32Array(c.nLayers * c.seqLen * kvDim(c));
		this.residual = Array.from({ length: c.nLayers + 1 }, () => new Float32Array(c.dim));
		this.sublayer = Array.from({ length: c.nLayers }, () => ({
			attn_out: new Float32Array(c.dim),
			mlp_in: new Float32Array(c.dim),
			mlp_out: new Float32Array(c.dim)
		}));
	}

	/**
	 * Runs one token at the next position and returns its logits.
	 * `edit(b, x)` may change the residual at boundary b in place (b = L is `blocks.L.hook_resid_pre`);
	 * `editSublayer(l, hook, v)` the tensor at `blocks.l.hook_{attn_out, mlp_in, mlp_out}`.
	 */
	step(
		token: number,
		edit?: (boundary: number, x: Float32Array) => void,
		editSublayer?: (layer: number, hook: SublayerHook, v: Float32Array) => void
	): Float32Array {
		const { w } = this;
		const c = w.config;
		const { dim, hiddenDim, nHeads, nKvHeads, seqLen } = c;
		const hs = headSize(c);
		const kv = kvDim(c);
		const kvMul = nHeads / nKvHeads;
		const pos = this.pos++;
		if (pos >= seqLen) throw new Error(`position ${pos} is past the context of ${seqLen}`);

		const x = w.tokenEmbedding.slice(token * dim, (token + 1) * dim);
		const xb = new Float32Array(dim);
		const xb2 = new Float32Array(dim);
		const q = new Float32Array(dim);
		const k = new Float32Array(kv);
		const v = new Float32Array(kv);
		const hb = new Float32Array(hiddenDim);
		const hb2 = new Float32Array(hiddenDim);
		const att = new Float32Array(pos + 1);

		for (let l = 0; l < c.nLayers; l++) {
			edit?.(l, x);
			this.residual[l].set(x);
			const L = w.layers[l];
			rmsnorm(xb, x, L.rmsAtt, c.normEps);
			matmul(q, xb, L.wq, dim, dim);
			matmul(k, xb, L.wk, dim, kv);
			matmul(v, xb, L.wv, dim, kv);
			// RoPE on interleaved pairs (i, i+1) of each head.
			for (let i = 0; i < dim; i += 2) {
				const freq = 1 / Math.pow(c.ropeTheta, (i % hs) / hs);
				const val = pos * freq;
				const fcr = Math.cos(val);
				const fci = Math.sin(val);
				for (const vec of i < kv ? [q, k] : [q]) {
					const v0 = vec[i];
					const v1 = vec[i + 1];
					vec[i] = v0 * fcr - v1 * fci;
					vec[i + 1] = v0 * fci + v1 * fcr;
				}
			}
			const loff = l * seqLen * kv;
			this.keyCache.set(k, loff + pos * kv);
			this.valueCache.set(v, loff + pos * kv);
			// Grouped-query attention: head h reads kv head floor(h / kvMul).
			for (let h = 0; h < nHeads; h++) {
				const qh = h * hs;
				const kvh = Math.floor(h / kvMul) * hs;
				let max = -Infinity;
				for (let t = 0; t <= pos; t++) {
					let s = 0;
					const kt = loff + t * kv + kvh;
					for (let i = 0; i < hs; i++) s += q[qh + i] * this.keyCache[kt + i];
					att[t] = s / Math.sqrt(hs);
					if (att[t] > max) max = att[t];
				}
				let sum = 0;
				for (let t = 0; t <= pos; t++) sum += att[t] = Math.exp(att[t] - max);
				for (let i = 0; i < hs; i++) xb[qh + i] = 0;
				for (let t = 0; t <= pos; t++) {
					const a = att[t] / sum;
					const vt = loff + t * kv + kvh;
					for (let i = 0; i < hs; i++) xb[qh + i] += a * this.valueCache[vt + i];
				}
			}
			matmul(xb2, xb, L.wo, dim, dim);
			editSublayer?.(l, 'attn_out', xb2);
			this.sublayer[l].attn_out.set(xb2);
			for (let i = 0; i < dim; i++) x[i] += xb2[i];
			// SwiGLU feed-forward.
			rmsnorm(xb, x, L.rmsFfn, c.normEps);
			editSublayer?.(l, 'mlp_in', xb);
			this.sublayer[l].mlp_in.set(xb);
			matmul(hb, xb, L.w1, dim, hiddenDim);
			matmul(hb2, xb, L.w3, dim, hiddenDim);
			for (let i = 0; i < hiddenDim; i++) hb[i] = (hb[i] / (1 + Math.exp(-hb[i]))) * hb2[i];
			matmul(xb, hb, L.w2, hiddenDim, dim);
			editSublayer?.(l, 'mlp_out', xb);
			this.sublayer[l].mlp_out.set(xb);
			for (let i = 0; i < dim; i++) x[i] += xb[i];
		}
		edit?.(c.nLayers, x);
		this.residual[c.nLayers].set(x);
		rmsnorm(xb, x, w.rmsFinal, c.normEps);
		const logits = new Float32Array(c.vocabSize);
		matmul(logits, xb, w.classifier, dim, c.vocabSize);
		return logits;
	}
}

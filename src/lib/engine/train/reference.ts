/**
 * The SAE training step in plain TypeScript: the reference the WGSL trainer is checked against
 * (and the gradient check differentiates numerically). Shapes: x [B, d], W_enc [d, n], b_enc [n],
 * W_dec [n, d], b_dec [d].
 *
 *   pre  = (x − b_dec) · W_enc + b_enc
 *   acts = TopK(ReLU(pre))          (topk)   or   ReLU(pre)   (relu)
 *   x̂    = acts · W_dec + b_dec
 *   loss = (1/B) Σ_b ‖x̂_b − x_b‖²  +  λ (1/B) Σ_b Σ_j acts_bj ‖W_dec[j]‖     (the L1 term: relu only,
 *          weighted by decoder norms as SAELens does, so shrinking W_dec cannot cheat the penalty)
 */
export type TrainArch = 'topk' | 'relu';

export interface SaeParams {
	wEnc: Float32Array;
	bEnc: Float32Array;
	wDec: Float32Array;
	bDec: Float32Array;
}

export interface TrainShape {
	d: number;
	n: number;
	arch: TrainArch;
	k: number; // topk
	l1: number; // relu: λ
}

type Floats = Float32Array | Float64Array;

export interface ForwardOut {
	pre: Floats;
	acts: Floats;
	err: Floats; // x̂ − x
	mse: number; // (1/B) Σ ‖err‖²
	l1: number; // (1/B) Σ acts · ‖W_dec‖ (0 for topk)
	loss: number;
}

export function decoderNorms(p: SaeParams, s: TrainShape): Float32Array {
	const out = new Float32Array(s.n);
	for (let j = 0; j < s.n; j++) {
		let a = 0;
		for (let i = 0; i < s.d; i++) a += p.wDec[j * s.d + i] ** 2;
		out[j] = Math.sqrt(a);
	}
	return out;
}

/** `precise`: keep intermediates in float64 (for finite differences), else float32 as the GPU does. */
export function forward(p: SaeParams, s: TrainShape, x: Float32Array, B: number, precise = false): ForwardOut {
	const { d, n } = s;
	const A = precise ? Float64Array : Float32Array;
	const pre = new A(B * n);
	const acts = new A(B * n);
	const err = new A(B * d);
	for (let b = 0; b < B; b++) {
		for (let j = 0; j < n; j++) {
			let a = p.bEnc[j];
			for (let i = 0; i < d; i++) a += (x[b * d + i] - p.bDec[i]) * p.wEnc[i * n + j];
			pre[b * n + j] = a;
		}
		const row = pre.subarray(b * n, (b + 1) * n);
		if (s.arch === 'relu') for (let j = 0; j < n; j++) acts[b * n + j] = Math.max(0, row[j]);
		else {
			// The k largest (ties: lower index first), then ReLU.
			const order = Array.from(row.keys()).sort((u, v) => row[v] - row[u] || u - v).slice(0, s.k);
			for (const j of order) acts[b * n + j] = Math.max(0, row[j]);
		}
	}
	let mse = 0;
	for (let b = 0; b < B; b++)
		for (let i = 0; i < d; i++) {
			let a = p.bDec[i];
			for (let j = 0; j < n; j++) a += acts[b * n + j] * p.wDec[j * d + i];
			const e = a - x[b * d + i];
			err[b * d + i] = e;
			mse += e * e;
		}
	mse /= B;
	let l1 = 0;
	if (s.arch === 'relu') {
		const norms = decoderNorms(p, s);
		for (let b = 0; b < B; b++) for (let j = 0; j < n; j++) l1 += acts[b * n + j] * norms[j];
		l1 = (s.l1 * l1) / B;
	}
	return { pre, acts, err, mse, l1, loss: mse + l1 };
}

/** Gradients of `loss` (TopK's selection and ReLU's gate held fixed, as autograd does). */
export function backward(p: SaeParams, s: TrainShape, x: Float32Array, B: number, f: ForwardOut): SaeParams {
	const { d, n } = s;
	const norms = s.arch === 'relu' ? decoderNorms(p, s) : null;
	const g: SaeParams = { wEnc: new Float32Array(d * n), bEnc: new Float32Array(n), wDec: new Float32Array(n * d), bDec: new Float32Array(d) };
	const dpre = new Float32Array(B * n);
	for (let b = 0; b < B; b++)
		for (let j = 0; j < n; j++) {
			if (f.acts[b * n + j] <= 0) continue; // gate: not selected or not positive
			let a = 0;
			for (let i = 0; i < d; i++) a += (2 / B) * f.err[b * d + i] * p.wDec[j * d + i];
			if (norms) a += (s.l1 / B) * norms[j];
			dpre[b * n + j] = a;
		}
	for (let j = 0; j < n; j++)
		for (let i = 0; i < d; i++) {
			let a = 0;
			for (let b = 0; b < B; b++) a += f.acts[b * n + j] * f.err[b * d + i];
			a *= 2 / B;
			if (norms && norms[j] > 0) {
				let s1 = 0;
				for (let b = 0; b < B; b++) s1 += f.acts[b * n + j];
				a += ((s.l1 / B) * s1 * p.wDec[j * d + i]) / norms[j];
			}
			g.wDec[j * d + i] = a;
		}
	for (let i = 0; i < d; i++)
		for (let j = 0; j < n; j++) {
			let a = 0;
			for (let b = 0; b < B; b++) a += (x[b * d + i] - p.bDec[i]) * dpre[b * n + j];
			g.wEnc[i * n + j] = a;
		}
	for (let j = 0; j < n; j++) {
		let a = 0;
		for (let b = 0; b < B; b++) a += dpre[b * n + j];
		g.bEnc[j] = a;
	}
	for (let i = 0; i < d; i++) {
		let a = 0;
		for (let b = 0; b < B; b++) a += (2 / B) * f.err[b * d + i];
		for (let j = 0; j < n; j++) {
			let s2 = 0;
			for (let b = 0; b < B; b++) s2 += dpre[b * n + j];
			a -= s2 * p.wEnc[i * n + j];
		}
		g.bDec[i] = a;
	}
	return g;
}

export interface AdamState {
	m: SaeParams;
	v: SaeParams;
	t: number;
}

export const ADAM = { beta1: 0.9, beta2: 0.999, eps: 1e-8 };

/** One Adam step with bias correction, in place. */
export function adamStep(p: SaeParams, g: SaeParams, st: AdamState, lr: number) {
	st.t++;
	const c1 = 1 - ADAM.beta1 ** st.t;
	const c2 = 1 - ADAM.beta2 ** st.t;
	for (const key of ['wEnc', 'bEnc', 'wDec', 'bDec'] as const) {
		const w = p[key], gr = g[key], m = st.m[key], v = st.v[key];
		for (let i = 0; i < w.length; i++) {
			m[i] = ADAM.beta1 * m[i] + (1 - ADAM.beta1) * gr[i];
			v[i] = ADAM.beta2 * v[i] + (1 - ADAM.beta2) * gr[i] * gr[i];
			w[i] -= (lr * (m[i] / c1)) / (Math.sqrt(v[i] / c2) + ADAM.eps);
		}
	}
}

/** TopK SAEs keep decoder rows at unit norm (the scale lives in the activations). */
export function normalizeDecoderRows(p: SaeParams, s: TrainShape) {
	const norms = decoderNorms(p, s);
	for (let j = 0; j < s.n; j++) for (let i = 0; i < s.d; i++) p.wDec[j * s.d + i] /= norms[j] || 1;
}

/** Initialisation as in the literature: W_dec rows random unit vectors, W_enc = W_decᵀ, b_enc = 0, b_dec = data mean. */
export function initParams(s: TrainShape, random: () => number, dataMean: Float32Array): SaeParams {
	const { d, n } = s;
	const wDec = new Float32Array(n * d);
	for (let j = 0; j < n; j++) {
		let norm = 0;
		for (let i = 0; i < d; i++) {
			// Box–Muller normal
			const u = Math.max(1e-12, random());
			const z = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
			wDec[j * d + i] = z;
			norm += z * z;
		}
		norm = Math.sqrt(norm);
		for (let i = 0; i < d; i++) wDec[j * d + i] /= norm;
	}
	const wEnc = new Float32Array(d * n);
	for (let j = 0; j < n; j++) for (let i = 0; i < d; i++) wEnc[i * n + j] = wDec[j * d + i];
	return { wEnc, bEnc: new Float32Array(n), wDec, bDec: Float32Array.from(dataMean) };
}

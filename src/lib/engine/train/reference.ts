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
 *        + AuxK (topk only; Gao et al. 2024, appendix A.2): the dead latents try to explain what the
 *          live ones missed. Per row, the k_aux largest pre-activations among dead latents that are
 *          not active in the row, ReLU'd, decode (without b_dec) the residual error x − x̂, held fixed:
 *            aux_b = Σ_{j ∈ auxTopK_b} relu(pre_bj) W_dec[j]
 *            loss += α · min(dead / k_aux, 1) · (1/B) Σ_b ‖aux_b − (x_b − x̂_b)‖²
 *          so a dead latent gets gradient (towards the error) although it never fires.
 *
 * JumpReLU (Rajamanoharan et al. 2024, as SAELens trains it): acts = pre · H(pre − θ), θ = exp(log θ)
 * per latent, and the sparsity term is λ (1/B) Σ_b Σ_j H(pre_bj − θ_j), an L0 penalty. H has no useful
 * derivative, so θ learns through straight-through estimators with a rectangle kernel of width ε
 * (K(z) = 1 for |z| < ½):
 *   ∂acts/∂θ ≈ −(θ/ε) K((pre − θ)/ε)        ∂H/∂θ ≈ −(1/ε) K((pre − θ)/ε)        (and ∂H/∂pre = 0)
 * Decoder rows are kept at unit norm, as for TopK, so the L0 penalty cannot be dodged by scale.
 *
 * The trainer sees activations multiplied by a fixed `scale` (so that E‖x‖² = d_in, SAELens's
 * "expected_average_only_in"); the reference takes x already scaled.
 *
 * Transcoders (shape.dOut set; sae/transcoder.ts has the forward): x [B, d] is the input hook
 * (blocks.L.hook_mlp_in), the target y [B, m] another (blocks.L.hook_mlp_out), m = d_out:
 *   pre  = x · W_enc + b_enc                        (no b_dec on the input: it is m wide)
 *   ŷ    = acts · W_dec + b_dec [+ x · W_skipᵀ]       W_dec [n, m], b_dec [m], W_skip [m, d]
 *   err  = ŷ − y, and every loss term above with err in place of x̂ − x (decoder norms over m).
 */
export type TrainArch = 'topk' | 'relu' | 'jumprelu';

export interface SaeParams {
	wEnc: Float32Array;
	bEnc: Float32Array;
	wDec: Float32Array;
	bDec: Float32Array;
	/** JumpReLU: log θ per latent. */
	logThreshold?: Float32Array;
	/** Transcoders with a skip connection: W_skip [m, d] (ŷ += x · W_skipᵀ). */
	wSkip?: Float32Array;
}

export interface TrainShape {
	d: number;
	n: number;
	arch: TrainArch;
	k: number; // topk
	l1: number; // relu: λ
	/** JumpReLU: λ, the L0 coefficient, and ε, the straight-through kernel's width. */
	l0?: number;
	bandwidth?: number;
	/** TopK: k_aux, how many dead latents each row recruits for the AuxK loss (0: no AuxK). */
	auxK?: number;
	/** TopK: α, the AuxK loss coefficient (1/32 in the paper). */
	auxCoeff?: number;
	/** Transcoders: m, the target's width (blocks.L.hook_mlp_out); absent for an SAE (the target is x). */
	dOut?: number;
	/** Transcoders: learn a skip connection W_skip [m, d] beside the features. */
	skip?: boolean;
}

/** The width of what the decoder writes: d for an SAE, d_out for a transcoder. */
export const outWidth = (s: TrainShape) => s.dOut ?? s.d;
export const isTranscoderShape = (s: TrainShape) => s.dOut !== undefined;

/** Which latents count as dead this step (a latent is dead after firing in none of the last N tokens). */
export type DeadMask = Uint8Array;

export const countDead = (dead: DeadMask | undefined) => (dead ? dead.reduce((a, x) => a + (x ? 1 : 0), 0) : 0);

/** The AuxK terms of a step with `numDead` dead latents: k_aux this step and α · min(dead / k_aux, 1). */
export function auxTerms(s: TrainShape, numDead: number): { k: number; weight: number } {
	if (s.arch !== 'topk' || !s.auxK || !s.auxCoeff || numDead === 0) return { k: 0, weight: 0 };
	return { k: Math.min(s.auxK, numDead), weight: s.auxCoeff * Math.min(numDead / s.auxK, 1) };
}

type Floats = Float32Array | Float64Array;

export interface ForwardOut {
	pre: Floats;
	acts: Floats;
	err: Floats; // x̂ − x (a transcoder: ŷ − y, [B, m])
	mse: number; // (1/B) Σ ‖err‖²
	l1: number; // the sparsity term: relu (1/B) Σ acts · ‖W_dec‖ · λ; jumprelu λ (1/B) Σ H(pre − θ); topk 0
	/** AuxK: per row, the chosen dead latents and their activations, and aux_b − (x_b − x̂_b). */
	auxSel: Int32Array[];
	auxActs: Floats[];
	auxErr: Floats;
	aux: number; // α · scale · (1/B) Σ ‖auxErr‖²
	loss: number;
}

export function decoderNorms(p: SaeParams, s: TrainShape): Float32Array {
	const out = new Float32Array(s.n);
	const m = outWidth(s);
	for (let j = 0; j < s.n; j++) {
		let a = 0;
		for (let i = 0; i < m; i++) a += p.wDec[j * m + i] ** 2;
		out[j] = Math.sqrt(a);
	}
	return out;
}

/**
 * `precise`: keep intermediates in float64 (for finite differences), else float32 as the GPU does.
 * `dead`: the dead latents (AuxK). `auxTarget`: the residual error x − x̂ the AuxK term aims at, to
 * hold it fixed when differencing numerically (autograd detaches it); by default this step's.
 * `y`: a transcoder's target [B, m] (an SAE's is x).
 */
export function forward(
	p: SaeParams,
	s: TrainShape,
	x: Float32Array,
	B: number,
	precise = false,
	dead?: DeadMask,
	auxTarget?: Floats,
	y?: Float32Array
): ForwardOut {
	const { d, n } = s;
	const m = outWidth(s);
	const tc = isTranscoderShape(s);
	if (tc && !y) throw new Error('a transcoder step needs its target y [B, d_out]');
	const target = tc ? y! : x;
	const A = precise ? Float64Array : Float32Array;
	const pre = new A(B * n);
	const acts = new A(B * n);
	const err = new A(B * m);
	for (let b = 0; b < B; b++) {
		for (let j = 0; j < n; j++) {
			let a = p.bEnc[j];
			for (let i = 0; i < d; i++) a += (x[b * d + i] - (tc ? 0 : p.bDec[i])) * p.wEnc[i * n + j];
			pre[b * n + j] = a;
		}
		const row = pre.subarray(b * n, (b + 1) * n);
		if (s.arch === 'relu') for (let j = 0; j < n; j++) acts[b * n + j] = Math.max(0, row[j]);
		else if (s.arch === 'jumprelu') for (let j = 0; j < n; j++) acts[b * n + j] = row[j] > Math.exp(p.logThreshold![j]) ? row[j] : 0;
		else {
			// The k largest (ties: lower index first), then ReLU.
			const order = Array.from(row.keys())
				.sort((u, v) => row[v] - row[u] || u - v)
				.slice(0, s.k);
			for (const j of order) acts[b * n + j] = Math.max(0, row[j]);
		}
	}
	let mse = 0;
	for (let b = 0; b < B; b++)
		for (let i = 0; i < m; i++) {
			let a = p.bDec[i];
			for (let j = 0; j < n; j++) a += acts[b * n + j] * p.wDec[j * m + i];
			if (p.wSkip) for (let k = 0; k < d; k++) a += x[b * d + k] * p.wSkip[i * d + k];
			const e = a - target[b * m + i];
			err[b * m + i] = e;
			mse += e * e;
		}
	mse /= B;
	let l1 = 0;
	if (s.arch === 'relu') {
		const norms = decoderNorms(p, s);
		for (let b = 0; b < B; b++) for (let j = 0; j < n; j++) l1 += acts[b * n + j] * norms[j];
		l1 = (s.l1 * l1) / B;
	}
	if (s.arch === 'jumprelu') {
		for (let b = 0; b < B; b++) for (let j = 0; j < n; j++) l1 += acts[b * n + j] !== 0 ? 1 : 0;
		l1 = ((s.l0 ?? 0) * l1) / B;
	}
	const { k: kAux, weight } = auxTerms(s, countDead(dead));
	const auxSel: Int32Array[] = [];
	const auxActs: Floats[] = [];
	const auxErr = new A(B * m);
	let aux = 0;
	if (kAux > 0) {
		for (let b = 0; b < B; b++) {
			const row = pre.subarray(b * n, (b + 1) * n);
			const eligible = Array.from(row.keys()).filter((j) => dead![j] && acts[b * n + j] === 0);
			const chosen = eligible.sort((u, v) => row[v] - row[u] || u - v).slice(0, kAux);
			auxSel.push(Int32Array.from(chosen));
			auxActs.push(A.from(chosen.map((j) => Math.max(0, row[j]))));
			for (let i = 0; i < m; i++) {
				let a = -(auxTarget ? auxTarget[b * m + i] : -err[b * m + i]); // aux − target, target = x − x̂ = −err
				chosen.forEach((j, r) => (a += auxActs[b][r] * p.wDec[j * m + i]));
				auxErr[b * m + i] = a;
				aux += a * a;
			}
		}
		aux = (weight * aux) / B;
	}
	return { pre, acts, err, mse, l1, auxSel, auxActs, auxErr, aux, loss: mse + l1 + aux };
}

/** Gradients of `loss` (TopK's selection and ReLU's gate held fixed, as autograd does; AuxK's target detached). */
export function backward(p: SaeParams, s: TrainShape, x: Float32Array, B: number, f: ForwardOut, dead?: DeadMask): SaeParams {
	const { d, n } = s;
	const m = outWidth(s);
	const tc = isTranscoderShape(s);
	const { weight } = auxTerms(s, countDead(dead));
	const norms = s.arch === 'relu' ? decoderNorms(p, s) : null;
	const g: SaeParams = {
		wEnc: new Float32Array(d * n),
		bEnc: new Float32Array(n),
		wDec: new Float32Array(n * m),
		bDec: new Float32Array(m)
	};
	const dpre = new Float32Array(B * n);
	for (let b = 0; b < B; b++)
		for (let j = 0; j < n; j++) {
			if (f.acts[b * n + j] <= 0) continue; // gate: not selected or not positive
			let a = 0;
			for (let i = 0; i < m; i++) a += (2 / B) * f.err[b * m + i] * p.wDec[j * m + i];
			if (norms) a += (s.l1 / B) * norms[j];
			dpre[b * n + j] = a;
		}
	// AuxK: ∂/∂aux_b = (2αs/B) auxErr_b; to the chosen dead latents' pre-activations and decoder rows.
	const auxDec = new Float64Array(n * m);
	f.auxSel.forEach((sel, b) =>
		sel.forEach((j, r) => {
			const act = f.auxActs[b][r];
			if (act <= 0) return;
			let a = 0;
			for (let i = 0; i < m; i++) {
				const gi = ((2 * weight) / B) * f.auxErr[b * m + i];
				a += gi * p.wDec[j * m + i];
				auxDec[j * m + i] += act * gi;
			}
			dpre[b * n + j] += a;
		})
	);
	// JumpReLU: θ's straight-through gradient, from every entry within ε/2 of its threshold (active or not).
	if (s.arch === 'jumprelu') {
		const eps = s.bandwidth!;
		g.logThreshold = new Float32Array(n);
		for (let j = 0; j < n; j++) {
			const th = Math.exp(p.logThreshold![j]);
			let gth = 0;
			for (let b = 0; b < B; b++) {
				if (Math.abs(f.pre[b * n + j] - th) >= eps / 2) continue;
				let dacts = 0;
				for (let i = 0; i < m; i++) dacts += (2 / B) * f.err[b * m + i] * p.wDec[j * m + i];
				gth += (-th / eps) * dacts - (s.l0 ?? 0) / (B * eps);
			}
			g.logThreshold[j] = th * gth; // ∂/∂log θ = θ ∂/∂θ
		}
	}
	for (let j = 0; j < n; j++)
		for (let i = 0; i < m; i++) {
			let a = 0;
			for (let b = 0; b < B; b++) a += f.acts[b * n + j] * f.err[b * m + i];
			a *= 2 / B;
			if (norms && norms[j] > 0) {
				let s1 = 0;
				for (let b = 0; b < B; b++) s1 += f.acts[b * n + j];
				a += ((s.l1 / B) * s1 * p.wDec[j * m + i]) / norms[j];
			}
			g.wDec[j * m + i] = a + auxDec[j * m + i];
		}
	for (let i = 0; i < d; i++)
		for (let j = 0; j < n; j++) {
			let a = 0;
			for (let b = 0; b < B; b++) a += (x[b * d + i] - (tc ? 0 : p.bDec[i])) * dpre[b * n + j];
			g.wEnc[i * n + j] = a;
		}
	for (let j = 0; j < n; j++) {
		let a = 0;
		for (let b = 0; b < B; b++) a += dpre[b * n + j];
		g.bEnc[j] = a;
	}
	for (let i = 0; i < m; i++) {
		let a = 0;
		for (let b = 0; b < B; b++) a += (2 / B) * f.err[b * m + i];
		// An SAE's b_dec is also subtracted from its input; a transcoder's is not.
		if (!tc)
			for (let j = 0; j < n; j++) {
				let s2 = 0;
				for (let b = 0; b < B; b++) s2 += dpre[b * n + j];
				a -= s2 * p.wEnc[i * n + j];
			}
		g.bDec[i] = a;
	}
	if (p.wSkip) {
		// ∂loss/∂W_skip[o, k] = (2/B) Σ_b err[b, o] x[b, k]
		g.wSkip = new Float32Array(m * d);
		for (let o = 0; o < m; o++)
			for (let k = 0; k < d; k++) {
				let a = 0;
				for (let b = 0; b < B; b++) a += f.err[b * m + o] * x[b * d + k];
				g.wSkip[o * d + k] = (2 / B) * a;
			}
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
	for (const key of ['wEnc', 'bEnc', 'wDec', 'bDec', 'logThreshold', 'wSkip'] as const) {
		const w = p[key],
			gr = g[key],
			m = st.m[key],
			v = st.v[key];
		if (!w || !gr || !m || !v) continue;
		for (let i = 0; i < w.length; i++) {
			m[i] = ADAM.beta1 * m[i] + (1 - ADAM.beta1) * gr[i];
			v[i] = ADAM.beta2 * v[i] + (1 - ADAM.beta2) * gr[i] * gr[i];
			w[i] -= (lr * (m[i] / c1)) / (Math.sqrt(v[i] / c2) + ADAM.eps);
		}
	}
}

/** TopK and JumpReLU SAEs keep decoder rows at unit norm (the scale lives in the activations). */
export function normalizeDecoderRows(p: SaeParams, s: TrainShape) {
	const norms = decoderNorms(p, s);
	const m = outWidth(s);
	for (let j = 0; j < s.n; j++) for (let i = 0; i < m; i++) p.wDec[j * m + i] /= norms[j] || 1;
}

/** JumpReLU's initial threshold (SAELens's default, for activations scaled to E‖x‖² = d_in). */
export const JUMPRELU_INIT_THRESHOLD = 0.001;

/**
 * Initialisation as in the literature: W_dec rows random unit vectors, W_enc = W_decᵀ, b_enc = 0,
 * b_dec = data mean (a transcoder: the target's mean); JumpReLU thresholds at JUMPRELU_INIT_THRESHOLD.
 * A transcoder whose d_out differs from d_in gets W_enc columns of their own (random unit vectors);
 * its W_skip starts at 0, as SAELens's SkipTranscoder.
 */
export function initParams(s: TrainShape, random: () => number, dataMean: Float32Array): SaeParams {
	const { d, n } = s;
	const m = outWidth(s);
	const unitRows = (rows: number, width: number) => {
		const w = new Float32Array(rows * width);
		for (let j = 0; j < rows; j++) {
			let norm = 0;
			for (let i = 0; i < width; i++) {
				// Box–Muller normal
				const u = Math.max(1e-12, random());
				const z = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
				w[j * width + i] = z;
				norm += z * z;
			}
			norm = Math.sqrt(norm);
			for (let i = 0; i < width; i++) w[j * width + i] /= norm;
		}
		return w;
	};
	const wDec = unitRows(n, m);
	const encRows = m === d ? wDec : unitRows(n, d);
	const wEnc = new Float32Array(d * n);
	for (let j = 0; j < n; j++) for (let i = 0; i < d; i++) wEnc[i * n + j] = encRows[j * d + i];
	const out: SaeParams = { wEnc, bEnc: new Float32Array(n), wDec, bDec: Float32Array.from(dataMean) };
	if (s.arch === 'jumprelu') out.logThreshold = new Float32Array(n).fill(Math.log(JUMPRELU_INIT_THRESHOLD));
	if (isTranscoderShape(s) && s.skip) out.wSkip = new Float32Array(m * d);
	return out;
}

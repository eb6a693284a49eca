/**
 * The three operations a batched backward pass through the frozen replacement model is made of,
 * in plain TypeScript. They are the attribution's CPU path and the references the WGSL kernels
 * (`shaders/attr_*.wgsl`) are tested against.
 *
 * A gradient batch G holds B targets' gradients with respect to the residual stream at one point
 * of the network: G[b, p, :] for every position p, laid out [B, P, D] row-major. Every op here is
 * the transpose (the vector–Jacobian product) of one frozen linear map of the forward pass.
 */

/**
 * G[r, :] += scale[pos(r)] ⊙ (Wᵀ · X[r, :]) for every row r = b·P + p, W stored [nOut, nIn] (out, in).
 * This is the backward of `y = W (scale ⊙ x)`: the skip connection (W_skip, scale = g_ffn·s_ffn[p])
 * and the value path of attention (W_v, scale = g_att·s_att[p]). With no scale it is the plain
 * Wᵀ product the output projection's backward needs (dz = W_oᵀ G).
 *
 * `rowScale[p · nIn + i]` is the frozen diagonal at position p; `out` defaults to a fresh buffer.
 */
export function matTransposeRows(
	x: Float64Array,
	w: Float32Array,
	rows: number,
	nOut: number,
	nIn: number,
	nPos: number,
	rowScale?: Float64Array,
	out?: Float64Array
): Float64Array {
	const y = out ?? new Float64Array(rows * nIn);
	const acc = new Float64Array(nIn);
	for (let r = 0; r < rows; r++) {
		acc.fill(0);
		const xr = r * nOut;
		for (let j = 0; j < nOut; j++) {
			const g = x[xr + j];
			if (g === 0) continue;
			const wr = j * nIn;
			for (let i = 0; i < nIn; i++) acc[i] += g * w[wr + i];
		}
		const p = r % nPos;
		for (let i = 0; i < nIn; i++) y[r * nIn + i] += rowScale ? rowScale[p * nIn + i] * acc[i] : acc[i];
	}
	return y;
}

/**
 * The backward of attention's mixing with frozen patterns, grouped-query style: the forward reads
 * z[p, h] = Σ_t A[h, p, t] · v[t, kv(h)], so
 *
 *   dV[b, t, kv] = Σ_{h reading kv} Σ_{p ≥ t} A[h, p, t] · dZ[b, p, h]
 *
 * dZ is [B, P, nHeads · hs], dV is [B, P, nKvHeads · hs]; A is [nHeads, P, P] (0 above the diagonal).
 */
export function attentionMixBackward(
	dz: Float64Array,
	pattern: Float64Array,
	batch: number,
	nPos: number,
	nHeads: number,
	nKvHeads: number,
	hs: number
): Float64Array {
	const dim = nHeads * hs;
	const kv = nKvHeads * hs;
	const group = nHeads / nKvHeads;
	const dv = new Float64Array(batch * nPos * kv);
	for (let b = 0; b < batch; b++)
		for (let h = 0; h < nHeads; h++) {
			const kvh = Math.floor(h / group) * hs;
			for (let p = 0; p < nPos; p++) {
				const zo = (b * nPos + p) * dim + h * hs;
				const arow = (h * nPos + p) * nPos;
				for (let t = 0; t <= p; t++) {
					const a = pattern[arow + t];
					if (a === 0) continue;
					const vo = (b * nPos + t) * kv + kvh;
					for (let i = 0; i < hs; i++) dv[vo + i] += a * dz[zo + i];
				}
			}
		}
	return dv;
}

/**
 * Reads edges off a gradient batch: out[b, s] = Σ_d G[b, pos[s], d] · S[s, d] — the direct effect
 * on each of B targets of each source vector S[s] (a feature's activation × its decoder row, an
 * error vector, a token embedding) written into the residual at position pos[s].
 */
export function contractSources(
	g: Float64Array,
	batch: number,
	nPos: number,
	dim: number,
	src: Float64Array,
	pos: Int32Array
): Float64Array {
	const n = pos.length;
	const out = new Float64Array(batch * n);
	for (let b = 0; b < batch; b++)
		for (let s = 0; s < n; s++) {
			const go = (b * nPos + pos[s]) * dim;
			const so = s * dim;
			let v = 0;
			for (let d = 0; d < dim; d++) v += g[go + d] * src[so + d];
			out[b * n + s] = v;
		}
	return out;
}

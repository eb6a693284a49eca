/**
 * SAEs as plain TypeScript: one small class per architecture over a shared base. This is the
 * reference the WGSL kernels are tested against, and the CPU path where there is no WebGPU.
 *
 *   x' = normalise(centre(x))                       (what the SAE was trained on)
 *   pre = (x' - [b_dec if applyBDecToInput]) · W_enc + b_enc
 *   acts = activation(pre)                          (ReLU | JumpReLU | TopK)
 *   x̂  = denormalise(acts · W_dec + b_dec)
 *
 * A transcoder (sae/transcoder.ts) is the same encoder with a decoder d_out wide; what it adds (the
 * skip connection, no denormalising of an output that is not its input) lives there.
 */
import { dOutOf, type SaeArchitecture, type SaeConfig, type SaeWeights } from './config';

export abstract class Sae {
	constructor(
		readonly cfg: SaeConfig,
		readonly w: SaeWeights
	) {}

	static create(cfg: SaeConfig, w: SaeWeights): Sae {
		const byArch: Record<SaeArchitecture, new (c: SaeConfig, w: SaeWeights) => Sae> = {
			relu: ReluSae,
			jumprelu: JumpReluSae,
			topk: TopKSae
		};
		return new byArch[cfg.architecture](cfg, w);
	}

	/** The activation function on one token's pre-activations, in place. */
	protected abstract activate(pre: Float32Array): void;

	/**
	 * Per token: centring and normalisation. Returns what undoes it after decoding: x = x̂ / scale + mean.
	 * For layer_norm that is SAELens's pair (sae_lens/saes/sae.py _setup_activation_normalization):
	 *   in:  x' = (x − μ) / (σ + 1e-5), σ = x.std() (unbiased, n − 1)     out: x̂·σ + μ (no eps)
	 * so `scale` is 1/σ while the input was multiplied by 1/(σ + 1e-5). (shaders/sae_preprocess.wgsl
	 * must match: it is the GPU path of this.)
	 */
	preprocess(x: Float32Array, tokens: number): { x: Float32Array; mean: Float32Array; scale: Float32Array } {
		const { dIn, centerInput, normalizeActivations: norm, normScale } = this.cfg;
		const out = x.slice();
		const mean = new Float32Array(tokens);
		const scale = new Float32Array(tokens).fill(1);
		for (let t = 0; t < tokens; t++) {
			const row = out.subarray(t * dIn, (t + 1) * dIn);
			if (centerInput || norm === 'layer_norm') {
				let m = 0;
				for (let i = 0; i < dIn; i++) m += row[i];
				m /= dIn;
				for (let i = 0; i < dIn; i++) row[i] -= m;
				mean[t] = m; // added back after decoding, so a spliced reconstruction keeps the residual's mean
			}
			let s = 1;
			let undo = 0; // 0: undo with s itself
			if (norm === 'layer_norm') {
				let v = 0;
				for (let i = 0; i < dIn; i++) v += row[i] * row[i];
				const std = Math.sqrt(v / Math.max(1, dIn - 1));
				s = 1 / (std + 1e-5);
				undo = 1 / std;
			} else if (norm === 'constant_norm_rescale') {
				let n = 0;
				for (let i = 0; i < dIn; i++) n += row[i] * row[i];
				s = Math.sqrt(dIn) / Math.sqrt(n);
			} else if (norm === 'expected_average_only_in') s = normScale ?? 1;
			if (s !== 1) for (let i = 0; i < dIn; i++) row[i] *= s;
			scale[t] = undo || s;
		}
		return { x: out, mean, scale };
	}

	/** Pre-activations [tokens, dSae] of preprocessed input. */
	preActivations(xPre: Float32Array, tokens: number): Float32Array {
		const { dIn, dSae, applyBDecToInput } = this.cfg;
		const { wEnc, bEnc, bDec } = this.w;
		const pre = new Float32Array(tokens * dSae);
		const xin = new Float32Array(dIn);
		for (let t = 0; t < tokens; t++) {
			for (let i = 0; i < dIn; i++) xin[i] = xPre[t * dIn + i] - (applyBDecToInput ? bDec[i] : 0);
			const row = pre.subarray(t * dSae, (t + 1) * dSae);
			row.set(bEnc);
			for (let i = 0; i < dIn; i++) {
				const xi = xin[i];
				if (xi === 0) continue;
				const wrow = i * dSae;
				for (let f = 0; f < dSae; f++) row[f] += xi * wEnc[wrow + f];
			}
		}
		return pre;
	}

	/** Feature activations [tokens, dSae] of the raw residual x [tokens, dIn]. */
	encode(x: Float32Array, tokens: number): Float32Array {
		const acts = this.preActivations(this.preprocess(x, tokens).x, tokens);
		for (let t = 0; t < tokens; t++) this.activate(acts.subarray(t * this.cfg.dSae, (t + 1) * this.cfg.dSae));
		return acts;
	}

	/** Reconstruction [tokens, dOut] in the residual's own space (normalisation undone). */
	decode(acts: Float32Array, tokens: number, undo?: { mean: Float32Array; scale: Float32Array }): Float32Array {
		const { dSae } = this.cfg;
		const dIn = dOutOf(this.cfg); // a transcoder's decoder rows are d_out wide
		const { wDec, bDec } = this.w;
		const out = new Float32Array(tokens * dIn);
		for (let t = 0; t < tokens; t++) {
			const row = out.subarray(t * dIn, (t + 1) * dIn);
			row.set(bDec);
			for (let f = 0; f < dSae; f++) {
				const a = acts[t * dSae + f];
				if (a === 0) continue;
				for (let i = 0; i < dIn; i++) row[i] += a * wDec[f * dIn + i];
			}
			if (undo) for (let i = 0; i < dIn; i++) row[i] = row[i] / undo.scale[t] + undo.mean[t];
		}
		return out;
	}
}

export class ReluSae extends Sae {
	protected activate(pre: Float32Array) {
		for (let f = 0; f < pre.length; f++) if (!(pre[f] > 0)) pre[f] = 0;
	}
}

/** JumpReLU (Gemma Scope): a feature fires only above its own threshold, with its full value. */
export class JumpReluSae extends Sae {
	protected activate(pre: Float32Array) {
		const th = this.w.threshold!;
		for (let f = 0; f < pre.length; f++) if (!(pre[f] > th[f] && pre[f] > 0)) pre[f] = 0;
	}
}

/** TopK: the k largest pre-activations (ReLU'd) survive, the rest are 0. Ties: the lower index. */
export class TopKSae extends Sae {
	protected activate(pre: Float32Array) {
		const k = this.cfg.k ?? 0;
		const keep = new Set(topK(pre, k).map(([i]) => i));
		for (let f = 0; f < pre.length; f++) if (!keep.has(f) || !(pre[f] > 0)) pre[f] = 0;
	}
}

/** The k largest values of a row as [index, value], largest first, ties to the lower index. */
export function topK(row: ArrayLike<number>, k: number): [number, number][] {
	const idx = Array.from({ length: row.length }, (_, i) => i);
	idx.sort((a, b) => row[b] - row[a] || a - b);
	return idx.slice(0, Math.min(k, row.length)).map((i) => [i, row[i]]);
}

/**
 * How well an SAE reconstructs the residual at its hook, over a batch of tokens (BOS left out):
 *   MSE = mean over tokens and dims of (x - x̂)²
 *   explained variance = 1 - Σ(x - x̂)² / Σ(x - x̄)²      x̄: the mean over the batch's tokens
 *   cosine = mean over tokens of cos(x, x̂)
 * x̂ is the decoded reconstruction with the SAE's input normalisation undone.
 */
import type { Sae } from './sae';

export interface ReconMetrics {
	tokens: number;
	mse: number;
	explainedVariance: number | null; // needs two or more tokens
	cosine: number;
}

/** Metrics from per-token sums [sse, x·x̂, x·x, x̂·x̂] (for t >= first) and column sums of x over those tokens. */
export function metricsFromSums(perToken: Float32Array, colSums: Float32Array, tokens: number, first: number, dIn: number): ReconMetrics {
	let sse = 0;
	let xx = 0;
	let cos = 0;
	const n = tokens - first;
	for (let t = first; t < tokens; t++) {
		const [e, dot, a, b] = perToken.subarray(4 * t, 4 * t + 4);
		sse += e;
		xx += a;
		cos += a > 0 && b > 0 ? dot / Math.sqrt(a * b) : 0;
	}
	const sst = xx - colSums.reduce((s, c) => s + c * c, 0) / Math.max(1, n);
	return {
		tokens: n,
		mse: sse / Math.max(1, n * dIn),
		explainedVariance: n >= 2 && sst > 0 ? 1 - sse / sst : null,
		cosine: cos / Math.max(1, n)
	};
}

export function reconstructionReference(sae: Sae, x: Float32Array, tokens: number, first = 1): ReconMetrics {
	const pre = sae.preprocess(x, tokens);
	return metricsOf(x, sae.decode(sae.encode(x, tokens), tokens, pre), tokens, first, sae.cfg.dIn);
}

/** The metrics of a reconstruction xhat of x (both [tokens, dIn]), as recon_metrics.wgsl sums them. */
export function metricsOf(x: Float32Array, xhat: Float32Array, tokens: number, first: number, dIn: number): ReconMetrics {
	const perToken = new Float32Array(4 * tokens);
	const colSums = new Float32Array(dIn);
	for (let t = 0; t < tokens; t++) {
		for (let i = 0; i < dIn; i++) {
			const a = x[t * dIn + i];
			const r = xhat[t * dIn + i];
			perToken[4 * t] += (a - r) * (a - r);
			perToken[4 * t + 1] += a * r;
			perToken[4 * t + 2] += a * a;
			perToken[4 * t + 3] += r * r;
			if (t >= first) colSums[i] += a;
		}
	}
	return metricsFromSums(perToken, colSums, tokens, first, dIn);
}

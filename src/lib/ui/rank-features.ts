/**
 * The ranked "which features fire on this text" list: the analysis's per-feature statistics
 * sorted by max or mean activation, with Neuronpedia's two filters (ignore BOS, hide features that
 * fire on more than 1% of tokens). Plain data in, plain data out, so it is tested in Node.
 */
import type { FeatureOnText } from '$lib/engine/sae/text-features';

export type RankBy = 'max' | 'mean';

export interface RankedFeature {
	id: number;
	max: number;
	mean: number;
	density?: number;
}

export interface RankOptions {
	by: RankBy;
	/** Leave the first token (BOS) out of max and mean, as Neuronpedia's search does by default. */
	ignoreBos: boolean;
	/** Hide features whose density is known and above `denseAbove`. */
	hideDense: boolean;
	denseAbove?: number;
	limit?: number;
}

/** `tokens`: how many tokens the text has (BOS included). */
export function rankFeatures(features: FeatureOnText[], tokens: number, o: RankOptions): RankedFeature[] {
	const n = o.ignoreBos ? tokens - 1 : tokens;
	if (n <= 0) return [];
	const out: RankedFeature[] = [];
	for (const f of features) {
		if (o.hideDense && f.density !== undefined && f.density > (o.denseAbove ?? 0.01)) continue;
		const max = o.ignoreBos ? f.max : Math.max(f.max, f.first);
		const mean = (o.ignoreBos ? f.sum : f.sum + f.first) / n;
		if (max > 0) out.push({ id: f.id, max, mean, density: f.density });
	}
	out.sort((a, b) => b[o.by] - a[o.by] || a.id - b.id);
	return out.slice(0, o.limit ?? 50);
}

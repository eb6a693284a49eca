// The ranked feature list against sums written out by hand for a three-token text (BOS, two tokens).
import { describe, expect, it } from 'vitest';
import { rankFeatures } from '../../src/lib/ui/rank-features';

// Feature 1 fires only on BOS (2.0); feature 2 on both tokens (0.4, 0.6); feature 3 once (0.9), dense.
const features = [
	{ id: 3, max: 0.9, sum: 0.9, first: 0, density: 0.2 },
	{ id: 2, max: 0.6, sum: 1.0, first: 0, density: 0.001 },
	{ id: 1, max: 0, sum: 0, first: 2 }
];

describe('rankFeatures', () => {
	it('by max, BOS ignored: the BOS-only feature is left out', () => {
		expect(rankFeatures(features, 3, { by: 'max', ignoreBos: true, hideDense: false })).toEqual([
			{ id: 3, max: 0.9, mean: 0.45, density: 0.2 },
			{ id: 2, max: 0.6, mean: 0.5, density: 0.001 }
		]);
	});
	it('by mean: the feature on both tokens comes first', () => {
		expect(rankFeatures(features, 3, { by: 'mean', ignoreBos: true, hideDense: false }).map((f) => f.id)).toEqual([2, 3]);
	});
	it('with BOS: its activation counts in max and mean over all three tokens', () => {
		const r = rankFeatures(features, 3, { by: 'max', ignoreBos: false, hideDense: false });
		expect(r[0]).toEqual({ id: 1, max: 2, mean: 2 / 3, density: undefined });
		expect(r.find((f) => f.id === 2)!.mean).toBeCloseTo(1 / 3, 12);
	});
	it('the density filter hides features on more than 1% of tokens; unknown densities stay', () => {
		expect(rankFeatures(features, 3, { by: 'max', ignoreBos: false, hideDense: true }).map((f) => f.id)).toEqual([1, 2]);
	});
	it('a text of only BOS has nothing to rank when BOS is ignored', () => {
		expect(rankFeatures(features, 1, { by: 'max', ignoreBos: true, hideDense: false })).toEqual([]);
	});
});

/**
 * Feature statistics over a corpus, as sae_vis and Neuronpedia dashboards show them: how often each
 * feature fires (density), its largest activation, a histogram of its activations, and its top
 * activating contexts. `FeatureStatsReference` is the plain TypeScript version of
 * shaders/feature_stats.wgsl (the CPU path, and the kernel's test reference).
 */
export const HIST_BINS = 24; // 4 a decade from 1e-3 to 1e3
export const TOP_EXAMPLES = 8;

export const histBin = (a: number) => Math.min(HIST_BINS - 1, Math.max(0, Math.floor((Math.log10(a) + 3) * 4)));
export const histBinRange = (b: number): [number, number] => [10 ** (b / 4 - 3), 10 ** ((b + 1) / 4 - 3)];

/** What a corpus run leaves behind for one SAE; plain arrays so it stores in IndexedDB as it is. */
export interface FeatureStats {
	dSae: number;
	tokens: number; // tokens counted (BOS excluded)
	fires: Uint32Array; // [dSae]
	maxAct: Float32Array; // [dSae]
	hist: Uint32Array; // [dSae, HIST_BINS]
	topVal: Float32Array; // [dSae, TOP_EXAMPLES]
	topRef: Uint32Array; // [dSae, TOP_EXAMPLES, 2]: context, position
}

export function emptyStats(dSae: number): FeatureStats {
	return {
		dSae,
		tokens: 0,
		fires: new Uint32Array(dSae),
		maxAct: new Float32Array(dSae),
		hist: new Uint32Array(dSae * HIST_BINS),
		topVal: new Float32Array(dSae * TOP_EXAMPLES),
		topRef: new Uint32Array(dSae * TOP_EXAMPLES * 2)
	};
}

/** Adds one context's activations [tokens, dSae], skipping positions before `first`. */
export function accumulateReference(s: FeatureStats, acts: Float32Array, tokens: number, context: number, first = 1) {
	const { dSae } = s;
	const N = TOP_EXAMPLES;
	s.tokens += Math.max(0, tokens - first);
	for (let f = 0; f < dSae; f++) {
		let best = 0;
		let bestT = 0;
		for (let t = first; t < tokens; t++) {
			const a = acts[t * dSae + f];
			if (a > 0) {
				s.fires[f]++;
				s.hist[f * HIST_BINS + histBin(a)]++;
				if (a > best) {
					best = a;
					bestT = t;
				}
			}
		}
		s.maxAct[f] = Math.max(s.maxAct[f], best);
		const base = f * N;
		if (best <= 0 || best <= s.topVal[base + N - 1]) continue;
		let j = N - 1;
		while (j > 0 && s.topVal[base + j - 1] < best) {
			s.topVal[base + j] = s.topVal[base + j - 1];
			s.topRef[2 * (base + j)] = s.topRef[2 * (base + j - 1)];
			s.topRef[2 * (base + j) + 1] = s.topRef[2 * (base + j - 1) + 1];
			j--;
		}
		s.topVal[base + j] = best;
		s.topRef[2 * (base + j)] = context;
		s.topRef[2 * (base + j) + 1] = bestT;
	}
}

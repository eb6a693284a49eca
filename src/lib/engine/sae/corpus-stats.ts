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

/** Feature f's activation histogram as Neuronpedia draws it: bar centres (geometric, per bin) and counts. */
export function featureHistogram(s: FeatureStats, f: number): { values: number[]; heights: number[] } {
	const values: number[] = [];
	const heights: number[] = [];
	for (let b = 0; b < HIST_BINS; b++) {
		const [lo, hi] = histBinRange(b);
		values.push(Math.sqrt(lo * hi));
		heights.push(s.hist[f * HIST_BINS + b]);
	}
	return { values, heights };
}

/**
 * Each feature's density (fraction of tokens it fires on): from a corpus run when there is one, else
 * from the SAE's sparsity.safetensors (log10 rates from its training), else none. The density filter
 * and the feature card read this, so they work before any corpus run.
 */
export function featureDensities(from: {
	stats?: FeatureStats | null;
	logSparsity?: Float32Array | null;
}): { density: Float32Array; source: 'corpus' | 'sparsity.safetensors' } | null {
	if (from.stats)
		return { density: Float32Array.from(from.stats.fires, (n) => (from.stats!.tokens ? n / from.stats!.tokens : 0)), source: 'corpus' };
	if (from.logSparsity)
		return {
			density: Float32Array.from(from.logSparsity, (l) => (l <= -10 + 1e-6 ? 0 : Math.max(0, 10 ** l - 1e-10))),
			source: 'sparsity.safetensors'
		};
	return null;
}

/** Features whose density lies in [lo, hi] (fractions of tokens), in index order. */
export function featuresInDensityRange(density: Float32Array, lo: number, hi: number): number[] {
	const out: number[] = [];
	for (let f = 0; f < density.length; f++) if (density[f] >= lo && density[f] <= hi) out.push(f);
	return out;
}

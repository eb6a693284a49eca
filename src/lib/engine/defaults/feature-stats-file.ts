/**
 * The file a bundled SAE's corpus statistics ship in (feature-stats.json beside its cfg.json), and
 * the corpus they point into (corpus.json, shared by every SAE of the release): plain JSON of a
 * corpus run's FeatureStats, read back into the typed arrays the explorer keeps. Written by
 * `npm run make-defaults`, read by the engine when it attaches a bundled SAE.
 */
import { LoupeError } from '../errors';
import { HIST_BINS, TOP_EXAMPLES, type FeatureStats } from '../sae/corpus-stats';

export interface FeatureStatsFile {
	corpus: string; // the corpus's name for people
	createdAt: string;
	dSae: number;
	tokens: number;
	fires: number[];
	maxAct: number[];
	hist: number[];
	topVal: number[];
	topRef: number[];
}

export interface CorpusFile {
	name: string;
	contexts: number[][]; // token ids, BOS first
}

/** Four significant digits are plenty for a histogram's neighbours and a top example's value. */
const round = (x: number) => Number(x.toPrecision(4));

export function statsToFile(stats: FeatureStats, corpus: string, createdAt: string): FeatureStatsFile {
	return {
		corpus,
		createdAt,
		dSae: stats.dSae,
		tokens: stats.tokens,
		fires: Array.from(stats.fires),
		maxAct: Array.from(stats.maxAct, round),
		hist: Array.from(stats.hist),
		topVal: Array.from(stats.topVal, round),
		topRef: Array.from(stats.topRef)
	};
}

function bad(name: string, what: string): LoupeError {
	return new LoupeError(
		'not-an-sae',
		`${name} is not the corpus statistics of a bundled SAE: ${what}.`,
		'Rebuild the app after `npm run make-defaults`, or reload the page (the files may be half-written).'
	);
}

/** Reads feature-stats.json back, checking every array's length against dSae and every reference against the corpus. */
export function statsFromFile(json: unknown, contexts: number, name = 'feature-stats.json'): FeatureStats {
	const f = (json ?? {}) as Partial<FeatureStatsFile>;
	const dSae = f.dSae;
	if (!Number.isInteger(dSae) || dSae! <= 0) throw bad(name, 'no positive integer dSae');
	if (!Number.isInteger(f.tokens) || f.tokens! < 0) throw bad(name, 'no token count');
	const arr = (key: keyof FeatureStatsFile, n: number) => {
		const a = f[key];
		if (!Array.isArray(a) || a.length !== n || a.some((x) => typeof x !== 'number' || !Number.isFinite(x)))
			throw bad(name, `"${key}" is not ${n.toLocaleString('en')} numbers`);
		return a as number[];
	};
	const n = dSae!;
	const topRef = Uint32Array.from(arr('topRef', n * TOP_EXAMPLES * 2));
	const topVal = Float32Array.from(arr('topVal', n * TOP_EXAMPLES));
	for (let i = 0; i < topVal.length; i++)
		if (topVal[i] > 0 && topRef[2 * i] >= contexts) throw bad(name, `a top example points at context ${topRef[2 * i]} of ${contexts}`);
	return {
		dSae: n,
		tokens: f.tokens!,
		fires: Uint32Array.from(arr('fires', n)),
		maxAct: Float32Array.from(arr('maxAct', n)),
		hist: Uint32Array.from(arr('hist', n * HIST_BINS)),
		topVal,
		topRef
	};
}

export function corpusFromFile(json: unknown, name = 'corpus.json'): CorpusFile {
	const c = (json ?? {}) as Partial<CorpusFile>;
	if (typeof c.name !== 'string' || !Array.isArray(c.contexts) || !c.contexts.every((x) => Array.isArray(x) && x.every(Number.isInteger)))
		throw bad(name, 'no corpus name and contexts of token ids');
	return { name: c.name, contexts: c.contexts };
}

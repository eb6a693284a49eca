/**
 * Feature labels from Neuronpedia explanation exports: a JSON array, an object holding one
 * (`explanations`), or JSON Lines, plain or gzipped (Neuronpedia's bulk exports are
 * `explanations/batch-N.jsonl.gz`: utils/neuronpedia-utils/neuronpedia_utils/export-data.py
 * export_explanations). Each row is an Explanation (apps/webapp/prisma/schema.prisma): `index` (the
 * feature, a string in exports, a number elsewhere), `description`, and where given
 * `explanationModelName`, `typeName`, `scoreV1`/`scoreV2` and `scores` (ExplanationScore rows:
 * value, explanationScoreTypeName, explanationScoreModelName). A feature may have several
 * explanations; all are kept, and the one Neuronpedia would list first (scoreV2, then scoreV1,
 * descending: lib/db/neuron.ts getNeuronOptimized) is the feature's label. Rows without both
 * index and description are skipped and counted.
 */
import { gunzipSync } from 'fflate';
import { LoupeError } from '../errors';

export interface ParsedLabel {
	feature: number;
	description: string;
}

export interface ExplanationScore {
	value: number;
	type?: string; // explanationScoreTypeName, e.g. "eleuther_fuzz"
	model?: string; // explanationScoreModelName
}

export interface ParsedExplanation {
	feature: number;
	description: string;
	explanationModelName?: string;
	typeName?: string;
	scoreV1?: number;
	scoreV2?: number;
	scores?: ExplanationScore[];
}

export interface ParsedExplanations {
	/** One per feature: its first explanation in Neuronpedia's order. */
	labels: ParsedLabel[];
	/** Every explanation read, in file order. */
	explanations: ParsedExplanation[];
	skipped: number;
}

const isGzip = (b: Uint8Array) => b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b;

/** Deflate expands at most 1032:1; fflate sizes its output by the stream's last four bytes (ISIZE), so they are checked first. */
const MAX_DEFLATE_RATIO = 1032;

/** The text of an explanations file: bytes are gunzipped when they are gzip (by magic, not name). */
export function explanationFileText(data: string | ArrayBuffer | Uint8Array, name = 'The file'): string {
	if (typeof data === 'string') return data;
	const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
	if (!isGzip(bytes)) return new TextDecoder().decode(bytes);
	if (bytes.length < 18)
		throw new LoupeError(
			'not-an-sae',
			`${name} is gzip but does not decompress: it is only ${bytes.length} bytes long (truncated).`,
			'Download it again.'
		);
	const isize = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(bytes.length - 4, true);
	if (isize > MAX_DEFLATE_RATIO * bytes.length + 1024)
		throw new LoupeError(
			'not-an-sae',
			`${name} is gzip but does not decompress: it says it holds ${isize.toLocaleString('en')} bytes uncompressed, more than its ${bytes.length.toLocaleString('en')} compressed bytes can expand to (truncated or damaged).`,
			'Download it again.'
		);
	try {
		return new TextDecoder().decode(gunzipSync(bytes));
	} catch (e) {
		throw new LoupeError(
			'not-an-sae',
			`${name} is gzip but does not decompress (${e instanceof Error ? e.message : e}).`,
			'The file may be truncated; download it again.'
		);
	}
}

/** JSON array, {explanations: [...]}, a single object, or JSON Lines → rows. */
export function jsonRows(text: string, name: string, what: string): unknown[] {
	const trimmed = text.trim();
	try {
		if (trimmed.startsWith('[')) return JSON.parse(trimmed);
		if (trimmed.startsWith('{') && !/\}\s*\n\s*\{/.test(trimmed)) {
			const o = JSON.parse(trimmed);
			return Array.isArray(o.explanations) ? o.explanations : [o];
		}
		return trimmed
			.split('\n')
			.filter((l) => l.trim())
			.map((l) => JSON.parse(l));
	} catch {
		throw new LoupeError('not-an-sae', `${name} is neither JSON nor JSON Lines.`, `Choose ${what}.`);
	}
}

const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
const str = (v: unknown) => (typeof v === 'string' && v ? v : undefined);

/** One Explanation row (or an explanation of a feature JSON) → Loupe's, or null when it lacks index or description. */
export function explanationOf(r: unknown, featureOverride?: number): ParsedExplanation | null {
	const row = (r ?? {}) as Record<string, unknown>;
	// An index is a number, or its decimal string (Neuronpedia's exports); anything else is no index
	// (Number() of an object whose toString is not a function would throw).
	const index =
		typeof row.index === 'number' ? row.index : typeof row.index === 'string' && /^\d+$/.test(row.index.trim()) ? Number(row.index) : NaN;
	const feature = featureOverride ?? index;
	const description = typeof row.description === 'string' ? row.description.trim() : '';
	if (!Number.isInteger(feature) || feature < 0 || !description) return null;
	const out: ParsedExplanation = { feature, description };
	if (str(row.explanationModelName)) out.explanationModelName = str(row.explanationModelName);
	if (str(row.typeName)) out.typeName = str(row.typeName);
	if (num(row.scoreV1) !== undefined) out.scoreV1 = num(row.scoreV1);
	if (num(row.scoreV2) !== undefined) out.scoreV2 = num(row.scoreV2);
	if (Array.isArray(row.scores)) {
		const scores = row.scores
			.map((s) => s as Record<string, unknown>)
			.filter((s) => num(s?.value) !== undefined)
			.map((s) => ({
				value: num(s.value)!,
				...(str(s.explanationScoreTypeName) ? { type: str(s.explanationScoreTypeName) } : {}),
				...(str(s.explanationScoreModelName) ? { model: str(s.explanationScoreModelName) } : {})
			}));
		if (scores.length) out.scores = scores;
	}
	return out;
}

/** Neuronpedia's listing order: scoreV2 desc, then scoreV1 desc (missing scores last); stable otherwise. */
export function byNeuronpediaOrder(a: ParsedExplanation, b: ParsedExplanation): number {
	const k = (x: number | undefined) => (x === undefined ? -Infinity : x);
	return k(b.scoreV2) - k(a.scoreV2) || k(b.scoreV1) - k(a.scoreV1);
}

/** One label per feature: its first explanation in Neuronpedia's order. */
export function labelsFromExplanations(explanations: ParsedExplanation[]): ParsedLabel[] {
	const byFeature = new Map<number, ParsedExplanation[]>();
	for (const e of explanations) byFeature.set(e.feature, [...(byFeature.get(e.feature) ?? []), e]);
	return [...byFeature.entries()].map(([feature, list]) => ({ feature, description: [...list].sort(byNeuronpediaOrder)[0].description }));
}

export function parseNeuronpediaExplanations(data: string | ArrayBuffer | Uint8Array, name = 'The file'): ParsedExplanations {
	const rows = jsonRows(
		explanationFileText(data, name),
		name,
		'a Neuronpedia explanations export (.json, .jsonl or .jsonl.gz with "index" and "description" on each row)'
	);
	const explanations: ParsedExplanation[] = [];
	let skipped = 0;
	for (const r of rows) {
		const e = explanationOf(r);
		if (e) explanations.push(e);
		else skipped++;
	}
	if (!explanations.length)
		throw new LoupeError(
			'not-an-sae',
			`${name} has no rows with "index" and "description".`,
			'Choose a Neuronpedia explanations export for this SAE.'
		);
	return { labels: labelsFromExplanations(explanations), explanations, skipped };
}

/**
 * Neuronpedia's shapes, both ways (hijohnnylin/neuronpedia):
 *  - a feature page's data, as GET /api/feature/{modelId}/{layer}/{index} returns it (a Neuron row
 *    with its `activations` and `explanations`: apps/webapp/lib/db/neuron.ts getNeuronOptimized,
 *    fields in apps/webapp/prisma/schema.prisma): read from a saved file, so a page opens offline;
 *    written from what Loupe knows of a feature (density, histogram, logits, top examples, label);
 *  - an SAE's dashboards as Neuronpedia's importer reads an export
 *    (utils/neuronpedia-utils/neuronpedia_utils/convert-saedashboard-to-neuronpedia-export.py:
 *    {modelId}/{sourceId}/source.jsonl, features/batch-0.jsonl.gz, activations/batch-0.jsonl.gz,
 *    explanations/batch-0.jsonl.gz);
 *  - labels as explanation JSON Lines (the rows export-data.py export_explanations writes).
 * A Neuronpedia "layer" is a source id: `{layer}-{sourceSet}` (8-res-jb, 12-gemmascope-2-res-16k).
 */
import { gzipSync } from 'fflate';
import { LoupeError } from '../errors';
import { explanationFileText, explanationOf, byNeuronpediaOrder, type ParsedExplanation } from './labels';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export interface FeatureExample {
	tokens: string[];
	values: number[];
}

/** What Loupe shows on a feature card, in Neuronpedia's terms. */
export interface NeuronpediaFeature {
	modelId: string;
	layer: string; // source id
	index: number;
	hookName?: string;
	density?: number; // frac_nonzero
	maxActApprox?: number;
	/** Activation histogram: bar centres and counts (freq_hist_data_bar_values / _heights). */
	histogram?: { values: number[]; heights: number[] };
	/** Logit-effect histogram over the vocabulary (logits_hist_data_bar_values / _heights). */
	logitsHistogram?: { values: number[]; heights: number[] };
	positive: { token: string; value: number }[]; // pos_str / pos_values
	negative: { token: string; value: number }[]; // neg_str / neg_values
	nearest: { id: number; value: number }[]; // topkCosSimIndices / topkCosSimValues
	examples: FeatureExample[]; // activations, strongest first
	explanations: ParsedExplanation[]; // in Neuronpedia's order
}

/** "blocks.8.hook_resid_pre" + "res-jb" → "8-res-jb". */
export function neuronpediaSourceId(hookName: string, sourceSet: string): string {
	const layer = /^blocks\.(\d+)\./.exec(hookName)?.[1];
	if (layer === undefined)
		throw new LoupeError(
			'sae-mismatch',
			`"${hookName}" has no layer number, which a Neuronpedia source id starts with.`,
			'Export an SAE at a blocks.L hook.'
		);
	return `${layer}-${sourceSet}`;
}

/** "gpt2-small/8-res-jb" → model and source. */
export function splitNeuronpediaId(id: string): { modelId: string; layer: string } | null {
	const m = /^([^/]+)\/([^/]+)$/.exec(id.trim());
	return m ? { modelId: m[1], layer: m[2] } : null;
}

const numbers = (v: unknown): number[] => (Array.isArray(v) ? v.map(Number).filter(Number.isFinite) : []);
const strings = (v: unknown): string[] => (Array.isArray(v) ? v.map(String) : []);
const pairs = (s: unknown, v: unknown) => {
	const a = strings(s);
	const b = numbers(v);
	return a.slice(0, b.length).map((token, i) => ({ token, value: b[i] }));
};

/** A saved /api/feature response (JSON text, or its bytes, gzipped or not) → the feature. */
export function parseNeuronpediaFeature(data: string | ArrayBuffer | Uint8Array, name = 'The file'): NeuronpediaFeature {
	let o: Json;
	try {
		o = JSON.parse(explanationFileText(data, name));
	} catch (e) {
		if (e instanceof LoupeError) throw e;
		throw new LoupeError(
			'not-an-sae',
			`${name} is not JSON.`,
			'Save a Neuronpedia feature as JSON (the /api/feature/{model}/{layer}/{index} response) and choose that file.'
		);
	}
	const index = Number(o?.index);
	if (!o || typeof o !== 'object' || typeof o.modelId !== 'string' || typeof o.layer !== 'string' || !Number.isInteger(index) || index < 0)
		throw new LoupeError(
			'not-an-sae',
			`${name} is not a Neuronpedia feature: it lacks modelId, layer or index.`,
			'Save the /api/feature/{model}/{layer}/{index} response of the feature and choose that file.'
		);
	const hist = (v: string, h: string) => {
		const values = numbers(o[v]);
		const heights = numbers(o[h]);
		return values.length && values.length === heights.length ? { values, heights } : undefined;
	};
	const examples: FeatureExample[] = (Array.isArray(o.activations) ? o.activations : [])
		.map((a: Json) => ({ tokens: strings(a?.tokens), values: numbers(a?.values), max: Number(a?.maxValue) }))
		.filter((a: { tokens: string[]; values: number[] }) => a.tokens.length && a.tokens.length === a.values.length)
		.sort((a: { max: number }, b: { max: number }) => (Number.isFinite(b.max) ? b.max : 0) - (Number.isFinite(a.max) ? a.max : 0))
		.map(({ tokens, values }: FeatureExample) => ({ tokens, values }));
	const explanations = (Array.isArray(o.explanations) ? o.explanations : [])
		.map((e: unknown) => explanationOf(e, index))
		.filter((e: ParsedExplanation | null): e is ParsedExplanation => e !== null)
		.sort(byNeuronpediaOrder);
	const nearestIds = numbers(o.topkCosSimIndices);
	const nearestValues = numbers(o.topkCosSimValues);
	return {
		modelId: o.modelId,
		layer: o.layer,
		index,
		hookName: typeof o.hookName === 'string' ? o.hookName : undefined,
		density: typeof o.frac_nonzero === 'number' ? o.frac_nonzero : undefined,
		maxActApprox: typeof o.maxActApprox === 'number' ? o.maxActApprox : undefined,
		histogram: hist('freq_hist_data_bar_values', 'freq_hist_data_bar_heights'),
		logitsHistogram: hist('logits_hist_data_bar_values', 'logits_hist_data_bar_heights'),
		positive: pairs(o.pos_str, o.pos_values),
		negative: pairs(o.neg_str, o.neg_values),
		nearest: nearestIds.slice(0, nearestValues.length).map((id, i) => ({ id, value: nearestValues[i] })),
		examples,
		explanations
	};
}

/** An Activation row (one top example) as Neuronpedia stores it. */
function activationRow(f: NeuronpediaFeature, ex: FeatureExample): Json {
	const maxValue = Math.max(...ex.values);
	return {
		modelId: f.modelId,
		layer: f.layer,
		index: String(f.index),
		tokens: ex.tokens,
		values: ex.values,
		maxValue,
		maxValueTokenIndex: ex.values.indexOf(maxValue),
		minValue: Math.min(...ex.values),
		dataSource: 'loupe'
	};
}

/** An Explanation row, as export-data.py writes them (index as a string). */
function explanationRow(f: { modelId: string; layer: string }, e: ParsedExplanation): Json {
	return {
		modelId: f.modelId,
		layer: f.layer,
		index: String(e.feature),
		description: e.description,
		explanationModelName: e.explanationModelName ?? null,
		typeName: e.typeName ?? null,
		...(e.scoreV1 !== undefined ? { scoreV1: e.scoreV1 } : {}),
		...(e.scoreV2 !== undefined ? { scoreV2: e.scoreV2 } : {}),
		...(e.scores
			? {
					scores: e.scores.map((s) => ({
						value: s.value,
						explanationScoreTypeName: s.type ?? null,
						explanationScoreModelName: s.model ?? null
					}))
				}
			: {})
	};
}

/** The Neuron row of a feature (the fields of schema.prisma's Neuron that Loupe has). */
function neuronRow(f: NeuronpediaFeature): Json {
	const maxAct = f.maxActApprox ?? Math.max(0, ...f.examples.flatMap((e) => e.values));
	return {
		modelId: f.modelId,
		layer: f.layer,
		index: String(f.index),
		maxActApprox: maxAct,
		frac_nonzero: f.density ?? 0,
		freq_hist_data_bar_values: f.histogram?.values ?? [],
		freq_hist_data_bar_heights: f.histogram?.heights ?? [],
		logits_hist_data_bar_values: f.logitsHistogram?.values ?? [],
		logits_hist_data_bar_heights: f.logitsHistogram?.heights ?? [],
		pos_str: f.positive.map((p) => p.token),
		pos_values: f.positive.map((p) => p.value),
		neg_str: f.negative.map((p) => p.token),
		neg_values: f.negative.map((p) => p.value),
		topkCosSimIndices: f.nearest.map((n) => n.id),
		topkCosSimValues: f.nearest.map((n) => n.value),
		hookName: f.hookName ?? null
	};
}

/** A feature page's data in the /api/feature response shape (what parseNeuronpediaFeature reads back). */
export function featureDashboardJson(f: NeuronpediaFeature): string {
	return JSON.stringify(
		{
			...neuronRow(f),
			activations: f.examples.map((ex) => activationRow(f, ex)),
			explanations: f.explanations.map((e) => explanationRow(f, e))
		},
		null,
		2
	);
}

/** Labels (or explanations) as Neuronpedia explanation JSON Lines for one source. */
export function explanationsJsonl(source: { modelId: string; layer: string }, explanations: ParsedExplanation[]): string {
	return explanations.map((e) => JSON.stringify(explanationRow(source, e))).join('\n') + (explanations.length ? '\n' : '');
}

/**
 * An SAE's dashboards as a Neuronpedia export folder: paths under {modelId}/{sourceId}/ → bytes.
 * `source` carries what source.jsonl says of where the weights live (hfRepoId, hfFolderId).
 */
export function neuronpediaExport(
	source: { modelId: string; layer: string; setName: string; hfRepoId?: string; hfFolderId?: string; dataset?: string },
	features: NeuronpediaFeature[]
): Record<string, Uint8Array> {
	const enc = new TextEncoder();
	const jsonl = (rows: Json[]) => enc.encode(rows.map((r) => JSON.stringify(r)).join('\n') + (rows.length ? '\n' : ''));
	const dir = `${source.modelId}/${source.layer}`;
	const sourceRow = {
		modelId: source.modelId,
		setName: source.setName,
		id: source.layer,
		visibility: 'PUBLIC',
		hfRepoId: source.hfRepoId ?? null,
		hfFolderId: source.hfFolderId ?? null,
		dataset: source.dataset ?? null
	};
	return {
		[`${dir}/source.jsonl`]: jsonl([sourceRow]),
		[`${dir}/features/batch-0.jsonl.gz`]: gzipSync(jsonl(features.map(neuronRow))),
		[`${dir}/activations/batch-0.jsonl.gz`]: gzipSync(jsonl(features.flatMap((f) => f.examples.map((ex) => activationRow(f, ex))))),
		[`${dir}/explanations/batch-0.jsonl.gz`]: gzipSync(jsonl(features.flatMap((f) => f.explanations.map((e) => explanationRow(f, e)))))
	};
}

// Neuronpedia's files, written here in the shapes Neuronpedia's own code writes them
// (hijohnnylin/neuronpedia: export-data.py export_explanations rows, gzipped; the
// /api/feature/{model}/{layer}/{index} response of lib/db/neuron.ts getNeuronOptimized), read by
// Loupe; and what Loupe writes for Neuronpedia, read back by Neuronpedia's field names.
import { describe, expect, it } from 'vitest';
import { gunzipSync, gzipSync, strFromU8 } from 'fflate';
import { parseNeuronpediaExplanations } from '../../src/lib/engine/sae/labels';
import {
	explanationsJsonl,
	featureDashboardJson,
	neuronpediaExport,
	neuronpediaSourceId,
	parseNeuronpediaFeature
} from '../../src/lib/engine/sae/neuronpedia';
import {
	emptyStats,
	accumulateReference,
	featureHistogram,
	featureDensities,
	featuresInDensityRange
} from '../../src/lib/engine/sae/corpus-stats';

// Explanation rows as export-data.py selects them (index a string; scores where the row has them).
const rows = [
	{
		id: 'c1',
		modelId: 'gpt2-small',
		layer: '8-res-jb',
		index: '5',
		authorId: 'x',
		description: 'dogs',
		embedding: null,
		typeName: 'oai_token-act-pair',
		explanationModelName: 'gpt-3.5-turbo',
		scoreV1: 0.2
	},
	{
		id: 'c2',
		modelId: 'gpt2-small',
		layer: '8-res-jb',
		index: '5',
		authorId: 'x',
		description: 'dogs and other pets',
		typeName: 'np_max-act-logits',
		explanationModelName: 'gpt-4o-mini',
		scoreV2: 0.8,
		scores: [{ value: 0.81, explanationScoreTypeName: 'eleuther_fuzz', explanationScoreModelName: 'gpt-4o-mini' }]
	},
	{ id: 'c3', modelId: 'gpt2-small', layer: '8-res-jb', index: '7', authorId: 'x', description: ' the word "the" ' },
	{ id: 'c4', modelId: 'gpt2-small', layer: '8-res-jb', index: '9', authorId: 'x', description: '' }
];
const jsonl = rows.map((r) => JSON.stringify(r)).join('\n') + '\n';

describe('Neuronpedia explanation exports', () => {
	it('reads the bulk .jsonl.gz (gzip) as it reads JSON Lines, keeping every explanation with its scores', () => {
		const gz = gzipSync(new TextEncoder().encode(jsonl));
		const a = parseNeuronpediaExplanations(gz, 'batch-0.jsonl.gz');
		const b = parseNeuronpediaExplanations(jsonl, 'batch-0.jsonl');
		expect(a).toEqual(b);
		expect(a.skipped).toBe(1);
		expect(a.explanations).toHaveLength(3); // explanations, not features
		expect(a.labels).toHaveLength(2); // features
		// Neuronpedia lists scoreV2 first: feature 5's label is its best-scored explanation.
		expect(a.labels).toEqual([
			{ feature: 5, description: 'dogs and other pets' },
			{ feature: 7, description: 'the word "the"' }
		]);
		expect(a.explanations[1]).toEqual({
			feature: 5,
			description: 'dogs and other pets',
			typeName: 'np_max-act-logits',
			explanationModelName: 'gpt-4o-mini',
			scoreV2: 0.8,
			scores: [{ value: 0.81, type: 'eleuther_fuzz', model: 'gpt-4o-mini' }]
		});
	});

	it('a truncated gzip is refused, saying so', () => {
		const gz = gzipSync(new TextEncoder().encode(jsonl));
		expect(() => parseNeuronpediaExplanations(gz.slice(0, 20), 'batch-0.jsonl.gz')).toThrow(
			/batch-0\.jsonl\.gz is gzip but does not decompress/
		);
	});

	it('labels leave as explanation JSON Lines that read back (Neuronpedia row fields, index as a string)', () => {
		const text = explanationsJsonl({ modelId: 'stories260K', layer: '2-loupe-res-512' }, [
			{ feature: 3, description: 'once upon a time' },
			{ feature: 11, description: 'dialogue' }
		]);
		const first = JSON.parse(text.split('\n')[0]);
		expect(first).toMatchObject({ modelId: 'stories260K', layer: '2-loupe-res-512', index: '3', description: 'once upon a time' });
		expect(parseNeuronpediaExplanations(text).labels).toEqual([
			{ feature: 3, description: 'once upon a time' },
			{ feature: 11, description: 'dialogue' }
		]);
	});
});

// A feature page as /api/feature returns it: the Neuron row, its activations (maxValue desc) and explanations.
const featureJson = {
	modelId: 'gpt2-small',
	layer: '8-res-jb',
	index: '1234',
	sourceSetName: 'res-jb',
	creatorId: 'x',
	maxActApprox: 12.5,
	hasVector: false,
	hookName: null,
	topkCosSimIndices: [99, 4],
	topkCosSimValues: [0.62, 0.41],
	neg_str: [' however', ' but'],
	neg_values: [-0.9, -0.7],
	pos_str: [' dog', ' puppy', ' canine'],
	pos_values: [1.2, 1.1, 0.95],
	frac_nonzero: 0.00123,
	freq_hist_data_bar_heights: [10, 4, 1],
	freq_hist_data_bar_values: [1.5, 4.5, 7.5],
	logits_hist_data_bar_heights: [3, 9],
	logits_hist_data_bar_values: [-0.5, 0.5],
	activations: [
		{ id: 'a2', tokens: ['The', ' cat'], values: [0, 3.0], maxValue: 3.0, maxValueTokenIndex: 1, minValue: 0 },
		{ id: 'a1', tokens: ['My', ' dog', ' ran'], values: [0, 12.5, 1], maxValue: 12.5, maxValueTokenIndex: 1, minValue: 0 }
	],
	explanations: [
		{
			id: 'e1',
			description: 'dogs',
			explanationModelName: 'gpt-4o-mini',
			typeName: 'np_max-act-logits',
			scores: [{ value: 0.7, explanationScoreTypeName: 'eleuther_embedding', explanationScoreModelName: 'x' }],
			triggeredByUser: null
		}
	],
	lists: [],
	comments: [],
	model: { id: 'gpt2-small' },
	source: { id: '8-res-jb' }
};

describe('Neuronpedia feature JSON', () => {
	it('a saved /api/feature response opens: density, histograms, logits, nearest, top examples (strongest first), explanations', () => {
		const f = parseNeuronpediaFeature(JSON.stringify(featureJson), '1234.json');
		expect(f).toMatchObject({ modelId: 'gpt2-small', layer: '8-res-jb', index: 1234, density: 0.00123, maxActApprox: 12.5 });
		expect(f.histogram).toEqual({ values: [1.5, 4.5, 7.5], heights: [10, 4, 1] });
		expect(f.logitsHistogram).toEqual({ values: [-0.5, 0.5], heights: [3, 9] });
		expect(f.positive[0]).toEqual({ token: ' dog', value: 1.2 });
		expect(f.negative).toEqual([
			{ token: ' however', value: -0.9 },
			{ token: ' but', value: -0.7 }
		]);
		expect(f.nearest).toEqual([
			{ id: 99, value: 0.62 },
			{ id: 4, value: 0.41 }
		]);
		expect(f.examples.map((e) => e.tokens[1])).toEqual([' dog', ' cat']);
		expect(f.explanations).toEqual([
			{
				feature: 1234,
				description: 'dogs',
				explanationModelName: 'gpt-4o-mini',
				typeName: 'np_max-act-logits',
				scores: [{ value: 0.7, type: 'eleuther_embedding', model: 'x' }]
			}
		]);
	});

	it('a file that is not a feature is refused, saying what to save', () => {
		expect(() => parseNeuronpediaFeature('{"modelId": "gpt2-small"}', 'x.json')).toThrow(
			/x\.json is not a Neuronpedia feature: it lacks modelId, layer or index/
		);
		expect(() => parseNeuronpediaFeature('<html>', 'page.html')).toThrow(/page\.html is not JSON/);
	});

	it("Loupe's dashboard of a feature is in Neuronpedia's field names and reads back", () => {
		// A corpus run of 3 tokens on a 2-feature SAE: feature 1 fires at 2.0 and 0.5.
		const stats = emptyStats(2);
		accumulateReference(stats, Float32Array.from([0, 0, 0, 2.0, 0, 0.5, 0, 0]), 4, 0);
		const hist = featureHistogram(stats, 1);
		expect(hist.heights.reduce((a, b) => a + b, 0)).toBe(2);
		const density = featureDensities({ stats })!.density[1];
		expect(density).toBeCloseTo(2 / 3, 6);
		const layer = neuronpediaSourceId('blocks.2.hook_resid_pre', 'loupe-res-2');
		expect(layer).toBe('2-loupe-res-2');
		const mine = {
			modelId: 'stories260K',
			layer,
			index: 1,
			density,
			histogram: hist,
			positive: [{ token: ' cat', value: 0.3 }],
			negative: [],
			nearest: [{ id: 0, value: 0.1 }],
			examples: [{ tokens: ['<s>', 'Once', ' upon'], values: [0, 2, 0.5] }],
			explanations: [{ feature: 1, description: 'story openings' }]
		};
		const o = JSON.parse(featureDashboardJson(mine));
		expect(o).toMatchObject({
			modelId: 'stories260K',
			layer: '2-loupe-res-2',
			index: '1',
			frac_nonzero: density,
			maxActApprox: 2,
			pos_str: [' cat'],
			topkCosSimIndices: [0]
		});
		expect(o.activations[0]).toMatchObject({ tokens: ['<s>', 'Once', ' upon'], maxValue: 2, maxValueTokenIndex: 1, minValue: 0 });
		expect(o.explanations[0]).toMatchObject({ index: '1', description: 'story openings' });
		expect(parseNeuronpediaFeature(JSON.stringify(o))).toMatchObject({
			index: 1,
			density,
			examples: mine.examples,
			explanations: [{ feature: 1, description: 'story openings' }]
		});
		expect(featuresInDensityRange(featureDensities({ stats })!.density, 0.1, 1)).toEqual([1]);
	});

	it('an export folder as Neuronpedia imports it: source.jsonl and gzipped features/activations/explanations batches', () => {
		const f = parseNeuronpediaFeature(JSON.stringify(featureJson));
		const files = neuronpediaExport(
			{
				modelId: 'gpt2-small',
				layer: '8-res-jb',
				setName: 'res-jb',
				hfRepoId: 'jbloom/GPT2-Small-SAEs-Reformatted',
				hfFolderId: 'blocks.8.hook_resid_pre'
			},
			[f]
		);
		expect(Object.keys(files).sort()).toEqual([
			'gpt2-small/8-res-jb/activations/batch-0.jsonl.gz',
			'gpt2-small/8-res-jb/explanations/batch-0.jsonl.gz',
			'gpt2-small/8-res-jb/features/batch-0.jsonl.gz',
			'gpt2-small/8-res-jb/source.jsonl'
		]);
		const lines = (p: string) =>
			strFromU8(gunzipSync(files[p]))
				.trim()
				.split('\n')
				.map((l) => JSON.parse(l));
		expect(lines('gpt2-small/8-res-jb/features/batch-0.jsonl.gz')[0]).toMatchObject({
			modelId: 'gpt2-small',
			layer: '8-res-jb',
			index: '1234',
			frac_nonzero: 0.00123,
			pos_str: [' dog', ' puppy', ' canine']
		});
		expect(lines('gpt2-small/8-res-jb/activations/batch-0.jsonl.gz').map((a) => a.maxValue)).toEqual([12.5, 3]);
		expect(parseNeuronpediaExplanations(files['gpt2-small/8-res-jb/explanations/batch-0.jsonl.gz']).labels).toEqual([
			{ feature: 1234, description: 'dogs' }
		]);
		expect(JSON.parse(strFromU8(files['gpt2-small/8-res-jb/source.jsonl']))).toMatchObject({
			id: '8-res-jb',
			setName: 'res-jb',
			hfRepoId: 'jbloom/GPT2-Small-SAEs-Reformatted'
		});
	});
});

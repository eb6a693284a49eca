// Fuzz: feature labels (Neuronpedia explanation exports: JSON, {explanations}, JSON Lines, gzipped)
// and steering preset files. Valid files written here, one value at a time made hostile, rows and
// lines cut, gzip streams truncated or claiming sizes they do not have.
import { afterAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { gzipSync } from 'fflate';
import { parseNeuronpediaExplanations } from '../../../src/lib/engine/sae/labels';
import { parsePresetFile } from '../../../src/lib/engine/steer/preset-file';
import { parseSteer } from '../../../src/lib/engine/steer/url';
import { LoupeError } from '../../../src/lib/engine/errors';
import { fuzz, runCase, Tally } from '../../fuzz/harness';
import { mutatedBytes } from '../../fuzz/bytes';
import { mutatedJson } from '../../fuzz/json';

const labelTally = new Tally('labels (JSON / JSONL / .jsonl.gz)');
const presetTally = new Tally('steering preset files');
afterAll(() => {
	console.log(labelTally.line());
	console.log(presetTally.line());
});

const rows = [
	{
		index: '12',
		description: 'cats',
		explanationModelName: 'gpt-4o-mini',
		typeName: 'oai_token-act-pair',
		scoreV1: 0.4,
		scores: [{ value: 0.7, explanationScoreTypeName: 'eleuther_fuzz' }]
	},
	{ index: 3, description: ' the letter q ', scoreV2: 0.9 }
];
const jsonl = rows.map((r) => JSON.stringify(r)).join('\n');
const gz = gzipSync(new TextEncoder().encode(jsonl));
const preset = {
	loupe: 'steering-preset',
	version: 1,
	model: 'stories260K',
	name: 'cheerful',
	steer: '12:add:4,vk3x9q2:add:2:n,bos',
	sae: 'hub:x',
	createdAt: '2026-11-23T00:00:00.000Z',
	vectors: [
		{
			id: 'k3x9q2',
			name: 'happy − sad',
			model: 'stories260K',
			hook: 'blocks.3.hook_resid_pre',
			values: [0.5, -1.25, 3],
			positive: ['happy'],
			negative: ['sad'],
			createdAt: '2026-11-23T00:00:00.000Z'
		}
	]
};

describe('fuzz: labels', () => {
	it('the valid files read', () => {
		for (const f of [JSON.stringify(rows), JSON.stringify({ explanations: rows }), jsonl, gz])
			expect(
				parseNeuronpediaExplanations(f)
					.labels.map((l) => l.feature)
					.sort()
			).toEqual([12, 3]);
	});

	for (const [name, doc] of [
		['a JSON array', rows],
		['an {explanations} object', { explanations: rows }]
	] as const)
		it(`${name}, one value at a time`, () => {
			fuzz(
				labelTally,
				mutatedJson(doc, [{ toString: 1 }, '-1', '1e3', 2 ** 53 + 2]),
				({ text }) => runCase(text.length, () => parseNeuronpediaExplanations(text, 'explanations.json')),
				800
			);
		});

	it('JSON Lines with hostile lines', () => {
		const line = fc.oneof(
			fc.constantFrom(...jsonl.split('\n')),
			mutatedJson(rows[0]).map((m) => m.text)
		);
		fuzz(
			labelTally,
			fc.array(line, { maxLength: 6 }),
			(lines) => runCase(lines.join('\n').length, () => parseNeuronpediaExplanations(lines.join('\n'), 'batch-0.jsonl')),
			500
		);
	});

	it('gzip streams truncated, extended, with their size field (ISIZE) changed', () => {
		const isize = { name: 'ISIZE', at: gz.length - 4, kind: 'u32' as const };
		fuzz(
			labelTally,
			mutatedBytes(gz, [isize, { name: 'flags', at: 3, kind: 'u8' }]),
			({ bytes }) => runCase(bytes.length, () => parseNeuronpediaExplanations(bytes, 'batch-0.jsonl.gz')),
			600
		);
	});

	// Counterexamples fuzzing found, kept as plain cases.
	it('an index that is an object whose toString is 1 is skipped, not a TypeError', () => {
		const r = parseNeuronpediaExplanations(JSON.stringify([{ index: { toString: 1 }, description: 'x' }, rows[1]]));
		expect(r.skipped).toBe(1);
		expect(r.labels).toEqual([{ feature: 3, description: 'the letter q' }]);
	});

	it('a 20-byte gzip whose size field claims 4 GB is refused before fflate allocates it', () => {
		const b = gz.slice();
		new DataView(b.buffer).setUint32(b.length - 4, 0xfffffff0, true);
		expect(() => parseNeuronpediaExplanations(b, 'batch-0.jsonl.gz')).toThrow(LoupeError);
		expect(() => parseNeuronpediaExplanations(b, 'batch-0.jsonl.gz')).toThrow(/says it holds 4,294,967,280 bytes uncompressed/);
	});
});

// steer/preset-file.ts and steer/vectors.ts are another engineer's: the fixes these cases need are
// patches in the fuzz report. Until they land, the cases that crash today are skipped (said in the
// output), and they run by themselves once parsePresetFile refuses a JSON null with LoupeError.
const refusesWell = (text: string) => {
	try {
		parsePresetFile(text, 'stories260K');
	} catch (e) {
		return e instanceof LoupeError && !/Cannot|is not a function|primitive/.test(e.message);
	}
	return false;
};
const presetPatched = refusesWell('null');
const vectorsPatched = refusesWell(JSON.stringify({ ...preset, vectors: [{ ...preset.vectors[0], values: [{ toString: 1 }] }] }));
if (!presetPatched)
	console.log(
		'fuzz steering preset files: skipped until the patch to steer/preset-file.ts lands (JSON null, numbers, non-list vectors threw TypeErrors)'
	);

describe('fuzz: steering presets', () => {
	it('the valid file reads', () => {
		expect(parsePresetFile(JSON.stringify(preset), 'stories260K').vectors[0].values).toEqual(Float32Array.from([0.5, -1.25, 3]));
	});

	it.skipIf(!presetPatched)('a preset file, one value at a time; accepted ones parse their setup', () => {
		const arb = mutatedJson(preset, [
			'stories260K',
			'steering-preset',
			'12:add:1e999',
			'v:add:1',
			',,,',
			'bos',
			[null],
			[{ id: 'x', hook: 'h', values: 'abc' }]
		]);
		fuzz(
			presetTally,
			arb,
			({ text }) =>
				runCase(text.length, () => {
					const { preset: p } = parsePresetFile(text, 'stories260K');
					parseSteer(p.steer);
				}),
			1500
		);
	});

	// Counterexamples fuzzing found, kept as plain cases (the fix belongs in steer/preset-file.ts).
	it.skipIf(!presetPatched).each([
		['JSON null', 'null'],
		['a number', '5'],
		['a preset whose vectors is a number', JSON.stringify({ ...preset, vectors: 5 })]
	])('%s is refused with a message', (_, text) => {
		expect(() => parsePresetFile(text, 'stories260K')).toThrow(LoupeError);
		expect(() => parsePresetFile(text, 'stories260K')).not.toThrow(/is not a function|Cannot read/);
	});

	it.skipIf(!vectorsPatched)(
		'a vector whose values hold an object with toString 1 is refused in words (needs the vectors.ts patch)',
		() => {
			expect(refusesWell(JSON.stringify({ ...preset, vectors: [{ ...preset.vectors[0], values: [{ toString: 1 }] }] }))).toBe(true);
		}
	);
});

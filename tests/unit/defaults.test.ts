// What the app ships for its default model (static/bundled/, npm run make-defaults) and the pure
// parts that read it: the model's files are upstream's bytes (the fixtures' SHA256SUMS), every
// bundled SAE in the catalogue has its SAELens files, statistics and labels at its hook, the stats
// file reads back what was written and refuses what does not fit, the automatic label's wording,
// the app root under a sub-path, and the default SAE in the URL.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fixturesDir, repoRoot } from '../fixtures';
import { appRoot, bundledHub } from '../../src/lib/engine/defaults/bundled';
import { autoLabel, mostFrequent, pieceForLabel } from '../../src/lib/engine/defaults/auto-label';
import { corpusFromFile, statsFromFile, statsToFile } from '../../src/lib/engine/defaults/feature-stats-file';
import { emptyStats, HIST_BINS, TOP_EXAMPLES } from '../../src/lib/engine/sae/corpus-stats';
import { BUNDLED_SAE_HOOKS, BUNDLED_SAE_REPO, SHIPPED_SAE_HOOKS, defaultSaeFor, saesFor } from '../../src/lib/engine/sae/catalogue';
import { findModel } from '../../src/lib/engine/model/catalogue';
import { readSaeFiles } from '../../src/lib/engine/sae/load';
import { parseNeuronpediaExplanations } from '../../src/lib/engine/sae/labels';
import { readViewState, writeViewState } from '../../src/lib/ui/url-state';

const bundled = resolve(repoRoot, 'static/bundled');
const read = (p: string) => readFileSync(resolve(bundled, p));
const ab = (b: Buffer) => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;

describe('the bundled default model', () => {
	it('is upstream stories260K byte for byte, with its licence beside it', () => {
		const sums = readFileSync(resolve(fixturesDir, 'SHA256SUMS'), 'utf8');
		const entry = findModel('stories260K');
		expect(entry?.bundled).toBe(true);
		if (entry?.format !== 'llama2c') throw new Error('stories260K is a llama2.c entry');
		for (const path of Object.values(entry.files)) {
			const sha = createHash('sha256')
				.update(read(`${entry.repo}/resolve/${entry.revision}/${path}`))
				.digest('hex');
			expect(sums).toContain(`${sha}  hub/${entry.repo}/resolve/${entry.revision}/${path}`);
		}
		expect(read(`${entry.repo}/resolve/main/stories260K/LICENSE`).toString()).toMatch(/MIT License[\s\S]*Andrej Karpathy/);
	});
});

describe('the bundled SAEs', () => {
	const saes = saesFor('stories260K').filter((s) => s.bundled);
	const dir = (folder: string) => `${BUNDLED_SAE_REPO}/resolve/main/${folder}`;
	const corpus = corpusFromFile(JSON.parse(read(`${BUNDLED_SAE_REPO}/resolve/main/corpus.json`).toString()));

	it('are made for every residual hook point of stories260K; those shipped are the ones metrics.json lists, the default among them', () => {
		expect(BUNDLED_SAE_HOOKS).toEqual([
			'blocks.0.hook_resid_pre',
			'blocks.1.hook_resid_pre',
			'blocks.2.hook_resid_pre',
			'blocks.3.hook_resid_pre',
			'blocks.4.hook_resid_pre',
			'blocks.4.hook_resid_post'
		]);
		const made = Object.keys(JSON.parse(read(`${BUNDLED_SAE_REPO}/resolve/main/metrics.json`).toString()).hooks);
		expect(saes.map((s) => s.hook).sort()).toEqual([...made].sort());
		expect(SHIPPED_SAE_HOOKS.sort()).toEqual([...made].sort());
		expect(defaultSaeFor('stories260K')).toBe(`release:${saes[0].release}/blocks.2.hook_resid_pre`);
		expect(saes.some((s) => s.hook === 'blocks.2.hook_resid_pre')).toBe(true);
		expect(defaultSaeFor('gpt2-small')).toBe('');
	});

	it.each(saes.map((s) => [s.hook, s] as const))('%s: SAELens files at the hook, statistics and a label per feature', (hook, s) => {
		const files = ['cfg.json', 'sae_weights.safetensors', 'sparsity.safetensors'].map((f) => ({
			name: `${s.folder}/${f}`,
			buffer: ab(read(`${dir(s.folder)}/${f}`))
		}));
		const { cfg, logSparsity } = readSaeFiles(files);
		expect(cfg).toMatchObject({ hookName: hook, dIn: 64, dSae: s.width, architecture: 'topk' });
		expect(logSparsity?.length).toBe(s.width);
		const stats = statsFromFile(JSON.parse(read(`${dir(s.folder)}/feature-stats.json`).toString()), corpus.contexts.length);
		expect(stats.dSae).toBe(s.width);
		// Every top example points at a real token of a real context.
		for (let i = 0; i < stats.topVal.length; i++)
			if (stats.topVal[i] > 0) expect(stats.topRef[2 * i + 1]).toBeLessThan(corpus.contexts[stats.topRef[2 * i]].length);
		const { explanations } = parseNeuronpediaExplanations(ab(read(`${dir(s.folder)}/explanations.jsonl`)));
		expect(explanations.map((e) => e.feature)).toEqual([...Array(s.width).keys()]);
		expect(explanations.every((e) => e.typeName === 'loupe-automatic')).toBe(true);
		// A feature that fired has a label saying on what; one that never did says so.
		for (const e of explanations)
			expect(e.description).toMatch(stats.fires[e.feature] > 0 ? /^fires on: .+ · promotes: / : /^never fired on the corpus · promotes: /);
	});
});

describe('the corpus statistics file', () => {
	it('reads back what was written, and refuses arrays of the wrong length or references past the corpus', () => {
		const s = emptyStats(3);
		s.tokens = 10;
		s.fires.set([2, 0, 5]);
		s.maxAct.set([1.23456, 0, 0.5]);
		s.hist[HIST_BINS + 4] = 7;
		s.topVal[0] = 1.23456;
		s.topRef.set([1, 4], 0);
		const file = JSON.parse(JSON.stringify(statsToFile(s, 'c', '2026-01-01')));
		const back = statsFromFile(file, 2);
		expect(Array.from(back.fires)).toEqual([2, 0, 5]);
		expect(back.maxAct[0]).toBeCloseTo(1.235, 6); // four significant digits
		expect(back.hist[HIST_BINS + 4]).toBe(7);
		expect(Array.from(back.topRef.subarray(0, 2))).toEqual([1, 4]);
		expect(back.topVal.length).toBe(3 * TOP_EXAMPLES);
		expect(() => statsFromFile(file, 1)).toThrow(/points at context 1 of 1/);
		expect(() => statsFromFile({ ...file, hist: [1, 2] }, 2)).toThrow(/"hist" is not 72 numbers/);
		expect(() => statsFromFile({ ...file, dSae: 0 }, 2)).toThrow(/no positive integer dSae/);
		expect(() => corpusFromFile({ name: 'x', contexts: [[1, 'a']] })).toThrow(/contexts of token ids/);
	});
});

describe('automatic labels', () => {
	it('name the most frequent top tokens and the top logits, spaces and newlines shown', () => {
		expect(autoLabel([' cat', ' dog', ' cat', '\n'], [' ran', ' ran', ' sat'])).toBe('fires on: cat, dog, ⏎ · promotes: ran, sat');
		expect(autoLabel([], [' the'])).toBe('never fired on the corpus · promotes: the');
		expect(mostFrequent(['b', 'a', 'a', 'c', 'b', 'd'], 3)).toEqual(['b', 'a', 'c']);
		expect([pieceForLabel(' '), pieceForLabel(''), pieceForLabel(' Tim ')]).toEqual(['␣', '∅', 'Tim']);
	});
});

describe('where the app finds its own files', () => {
	it('is the root the engine worker is served under, with any sub-path', () => {
		expect(appRoot('https://example.org/loupe/_app/immutable/workers/worker-abc.js')).toBe('https://example.org/loupe/');
		expect(appRoot('http://localhost:4173/_app/immutable/workers/worker-abc.js')).toBe('http://localhost:4173/');
		expect(appRoot('http://localhost:5173/src/lib/engine/worker.ts?worker_file&type=module')).toBe('http://localhost:5173/');
		expect(bundledHub('https://example.org/a/b/_app/x.js')).toBe('https://example.org/a/b/bundled');
		expect(existsSync(resolve(bundled, 'karpathy/tinyllamas/resolve/main/stories260K/stories260K.bin'))).toBe(true);
	});
});

describe('the default SAE in the URL', () => {
	it('attaches for the default model when the URL names none, and `sae=` keeps none', () => {
		const none = readViewState(new URLSearchParams());
		expect(none.sae).toBe(defaultSaeFor('stories260K'));
		expect(writeViewState(none).toString()).toBe('');
		const off = readViewState(new URLSearchParams('sae='));
		expect(off.sae).toBe('');
		expect(writeViewState(off).toString()).toBe('sae=');
		expect(readViewState(new URLSearchParams('model=gpt2-small')).sae).toBe('');
	});
});

// The train page's words for a run (train-view.ts) and the estimate's arithmetic (estimate.ts),
// checked against values worked out by hand from the settings.
import { describe, expect, it } from 'vitest';
import { explorerHref, phaseLine, runState } from '../../src/routes/train/train-view';
import { estimateRun, heldOutCount, storiesCorpus } from '../../src/lib/engine/train/estimate';
import { defaultTrainConfig, newCheckpoint, summarizeRun, type TrainProgress } from '../../src/lib/engine/train/training-run';

const cfg = {
	...defaultTrainConfig('stories260K', 'blocks.2.hook_resid_pre'),
	stories: 8,
	storyTokens: 50,
	tokens: 6400,
	batch: 64,
	width: 128
};
const progress = (p: Partial<TrainProgress>): TrainProgress => ({
	id: 'run-a',
	phase: 'writing',
	done: 0,
	total: 8,
	tokensPerSecond: 0,
	etaSeconds: 0,
	points: [],
	...p
});

describe('train page words', () => {
	it('says where a paused or stopped run was, with progress and ETA in every phase', () => {
		expect(phaseLine(progress({ done: 3, tokensPerSecond: 12.4, etaSeconds: 125 }), 'h')).toBe(
			'The model writes the corpus: story 3 of 8 · 12 tokens/s · about 2 min left'
		);
		expect(phaseLine(progress({ phase: 'harvesting', done: 2, total: 6, tokensPerSecond: 900, etaSeconds: 4 }), 'h')).toBe(
			'Harvesting activations at h into the GPU: context 2 of 6 · 900 activations/s · about 4 s left'
		);
		expect(phaseLine(progress({ phase: 'training', done: 10, total: 100, tokensPerSecond: 2000, etaSeconds: 29, reuse: 16 }), 'h')).toBe(
			'Step 10 of 100 · 2,000 tokens/s · about 29 s left · each activation used about 16 times'
		);
		expect(phaseLine(progress({ phase: 'paused', at: 'writing', done: 3 }), 'h')).toContain(
			'Paused while the model wrote the corpus (story 3 of 8)'
		);
		expect(phaseLine(progress({ phase: 'stopped', at: 'harvesting', done: 2, total: 6 }), 'h')).toContain(
			'Stopped while harvesting activations (context 2 of 6)'
		);
		expect(phaseLine(progress({ phase: 'paused', at: 'training', done: 40, total: 100 }), 'h')).toContain('Paused at step 40 of 100');
	});

	it('lists a run live while it runs here, as saved otherwise, interrupted when a closed tab left it running', () => {
		const saved = summarizeRun({
			...newCheckpoint('run-a', cfg, 64, 100, null),
			status: 'paused',
			corpus: [
				[1, 2],
				[1, 3]
			]
		});
		expect(runState(saved, null, false)).toBe('paused · story 2/8');
		expect(runState(saved, progress({ done: 5 }), true)).toBe('writing the corpus · story 5/8');
		expect(runState(saved, progress({ phase: 'training', done: 7, total: 100 }), true)).toBe('running · step 7/100');
		expect(runState(saved, progress({ id: 'run-b', done: 5 }), true)).toBe('paused · story 2/8');
		const left = summarizeRun({ ...newCheckpoint('run-c', cfg, 64, 100, null), phase: 'training', step: 30 });
		expect(runState(left, null, false)).toBe('interrupted · step 30/100');
	});

	it('gives the explorer back the prompt and settings the page was opened with', () => {
		const href = explorerHref(
			'/loupe',
			'prompt=Once+upon&temperature=0.7&hub=http%3A%2F%2Fx&sae=a%2Fb%2Fc&feature=3&steer=3%3Aadd%3A4',
			'stories260K',
			'run-a'
		);
		const url = new URL(href, 'http://h');
		expect(url.pathname).toBe('/loupe/');
		expect(Object.fromEntries(url.searchParams)).toEqual({
			prompt: 'Once upon',
			temperature: '0.7',
			hub: 'http://x',
			sae: 'trained:run-a'
		});
		expect(new URL(explorerHref('', '', 'gpt2', 'r'), 'http://h').search).toBe('?model=gpt2&sae=trained%3Ar');
	});
});

describe('run estimate', () => {
	it('adds the phases from the measured rates and says how often a small corpus is reused', () => {
		const rates = { writeTokenSeconds: 0.1, forwardSeconds: 0.5, forwardTokens: 51, stepSeconds: 0.02, stepBatch: 64, stepWidth: 64 };
		const e = estimateRun(cfg, rates, storiesCorpus(cfg), false);
		// 8 stories of 50 tokens at 0.1 s; 2 held out (a quarter of 8), 6 harvested at 0.5 s; 100 steps
		// at 0.02 s × (64·128)/(64·64) = 0.04 s, plus CE: 2 contexts × (2 + 4) passes × 0.5 s.
		expect(heldOutCount(8)).toBe(2);
		expect(e.writing).toBeCloseTo(40);
		expect(e.harvesting).toBeCloseTo(3);
		expect(e.training).toBeCloseTo(4 + 6);
		expect(e.total).toBeCloseTo(53);
		expect(e.activations).toBe(300);
		expect(e.reuse).toBeCloseTo(6400 / 300);
		expect(estimateRun(cfg, rates, { contexts: 40, tokens: 400 }, true).writing).toBe(0);
	});
});

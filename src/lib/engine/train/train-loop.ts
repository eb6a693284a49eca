/**
 * The training loop, phase by phase: the model writes the corpus (kept in the run from its first
 * story), activations are harvested into a GPU store, and shuffled batches go through the WGSL
 * trainer, with metrics streamed in small batches, CE loss recovered every quarter of the run and
 * checkpoints to IndexedDB every N steps. Pause and Stop act in every phase (within a token, a
 * context or a step) and save the run where it is; a resumed run goes on from there (the store is
 * harvested again from the kept corpus, the batch order is seeded per epoch, so it goes on as the
 * original would have). Each phase reports its progress, rate and ETA. The engine
 * (trainer-service.ts) checks the model and hands this a TrainingHost.
 */
import type { SegmentRunner } from '../model/runner';
import { LoupeError } from '../errors';
import { SaeTrainer } from '../gpu/sae-trainer';
import { seededRandom } from '../sample/prng';
import { saveTrainRun } from '../store/db';
import { CeEvaluator } from './ce-recovered';
import { CE_AT, heldOutCount } from './estimate';
import {
	deadWindow,
	harvest,
	initialParams,
	learningRate,
	newCheckpoint,
	shapeOf,
	summarizeRun,
	trainedSae,
	type MetricPoint,
	type RunPhase,
	type TrainCheckpoint,
	type TrainConfig,
	type TrainProgress,
	type TrainRunSummary,
	type TrainStatus
} from './training-run';

/** What the loop needs of the engine: the model cut at the hook, ORT's device, the corpus, and the flags. */
export interface TrainingHost {
	runner: SegmentRunner;
	device: GPUDevice;
	/** The hook's canonical name (as the runner reports it). */
	hook: string;
	dModel: number;
	/** One story the model writes (BOS first), or null when Pause or Stop cut it short. */
	story(seed: number, tokens: number): Promise<number[] | null>;
	/** Pasted text as contexts (BOS first). */
	text(text: string): Promise<number[][]>;
	flags: { pause: boolean; stop: boolean };
}

type Report = (p: Omit<TrainProgress, 'id' | 'tokensPerSecond' | 'etaSeconds' | 'points'> & Partial<TrainProgress>) => void;

/** Rate and ETA of a phase from the work done in it so far (this session's only). */
function pace(t0: number, doneHere: number, left: number, unitsHere: number) {
	const s = Math.max((performance.now() - t0) / 1000, 1e-3);
	return { tokensPerSecond: unitsHere / s, etaSeconds: doneHere ? (left * s) / doneHere : 0 };
}

/** Writes the stories still missing from `run.corpus` (or splits the text); false when halted. */
async function writeCorpus(host: TrainingHost, c: TrainConfig, run: TrainCheckpoint, save: () => Promise<void>, report: Report) {
	if (c.text !== undefined) {
		run.corpus = await host.text(c.text);
		return true;
	}
	const corpus = (run.corpus ??= []);
	const t0 = performance.now();
	let written = 0;
	let tokens = 0;
	report({ phase: 'writing', done: corpus.length, total: c.stories });
	while (corpus.length < c.stories) {
		if (host.flags.pause || host.flags.stop) return false;
		const story = await host.story(c.seed + corpus.length, c.storyTokens);
		if (!story) return false; // cut short mid-story: it is written again on resume (same seed)
		corpus.push(story);
		written++;
		tokens += story.length - 1;
		await save(); // a reload keeps what was written
		report({ phase: 'writing', done: corpus.length, total: c.stories, ...pace(t0, written, c.stories - corpus.length, tokens) });
	}
	return true;
}

export async function trainSae(
	host: TrainingHost,
	c: TrainConfig,
	resumed: TrainCheckpoint | undefined,
	onProgress: (p: TrainProgress) => void
): Promise<TrainRunSummary> {
	const { device, runner, hook } = host;
	const shape = shapeOf(c, host.dModel);
	const steps = Math.ceil(c.tokens / c.batch);
	const id = resumed?.id ?? `run-${Date.now().toString(36)}`;
	const report: Report = (p) => onProgress({ id, tokensPerSecond: 0, etaSeconds: 0, points: [], ...p });
	const run = resumed ?? newCheckpoint(id, c, shape.d, steps, null);
	const save = async (status: TrainStatus = run.status) => {
		run.status = status;
		run.updatedAt = new Date().toISOString();
		await saveTrainRun(run).catch((e) => {
			// The browser's QuotaExceededError has an empty message: say what it means. The record is written
			// in one transaction, so the checkpoint saved before this one is still whole, and the run stops.
			if (e instanceof DOMException && e.name === 'QuotaExceededError')
				throw new LoupeError(
					'storage-full',
					`The checkpoint at step ${run.step} could not be saved: the browser's storage for this site is full. The last checkpoint saved before it is kept, and the run resumes from it.`,
					'Free space in the Storage panel, then Resume the run below.'
				);
			throw new LoupeError(
				'storage-full',
				`The run could not be saved (${e instanceof Error ? e.message || e.name : e}). The last checkpoint saved before it is kept.`,
				'Free space in the Storage panel, then Resume the run below.'
			);
		});
	};
	/** Pause or Stop: the run is saved where it is and the call returns. */
	const halt = async (at: RunPhase, done: number, total: number, points: MetricPoint[] = []) => {
		const status = host.flags.stop ? 'stopped' : 'paused';
		run.phase = at;
		await save(status);
		report({ phase: status, at, done, total, points });
		return summarizeRun(run);
	};
	let store: GPUBuffer | null = null;
	let trainer: SaeTrainer | null = null;
	try {
		run.status = 'running';
		if (!run.corpusDone) {
			run.phase = 'writing';
			await save('running'); // listed at once, as running
			if (!(await writeCorpus(host, c, run, save, report))) return await halt('writing', run.corpus?.length ?? 0, c.stories);
			run.corpusDone = true;
		}
		const contexts = run.corpus!;
		if (contexts.length < 2)
			throw new LoupeError('model-failed', 'The training corpus is too small.', 'Let the model write more stories, or paste more text.');
		// A few contexts held out for CE loss recovered; the rest is harvested.
		const heldOut = contexts.slice(contexts.length - heldOutCount(contexts.length));
		const trainContexts = contexts.slice(0, contexts.length - heldOut.length);
		run.phase = run.params ? 'training' : 'harvesting';
		await save('running');
		const th = performance.now();
		const h = await harvest(
			device,
			runner,
			hook,
			shape.d,
			trainContexts,
			(done, rows) =>
				report({ phase: 'harvesting', done, total: trainContexts.length, ...pace(th, done, trainContexts.length - done, rows) }),
			() => host.flags.pause || host.flags.stop
		);
		store = h.store;
		if (h.halted)
			return await halt(run.params ? 'training' : 'harvesting', run.params ? run.step : 0, run.params ? steps : trainContexts.length);
		if (h.rows < c.batch)
			throw new LoupeError(
				'model-failed',
				`The corpus gave ${h.rows} activations, fewer than one batch (${c.batch}).`,
				'Use a larger corpus or a smaller batch.'
			);
		const reuse = c.tokens / h.rows;
		trainer = await SaeTrainer.create(device, shape, c.batch, run.params ?? initialParams(c, shape.d, new Float32Array(shape.d)));
		trainer.setStore(store, h.rows);
		trainer.setDeadAfter(deadWindow(c));
		if (run.params) {
			trainer.setScale(run.scale ?? 1);
			trainer.restoreState(run.adam);
			if (run.sinceFired) trainer.setSinceFired(run.sinceFired);
		} else {
			run.scale = await trainer.fitToStore();
			run.params = await trainer.readParams();
		}
		run.phase = 'training';
		const t = trainer;
		const capture = async () => {
			run.params = await t.readParams();
			run.adam = await t.readState();
			run.sinceFired = await t.readSinceFired();
		};
		const checkpoint = async (status: TrainStatus) => {
			await capture();
			await save(status);
		};
		const ce = new CeEvaluator(runner, device, hook, heldOut);
		const measureCe = async (step: number) => {
			run.params = await t.readParams();
			const sae = trainedSae(run); // the SAE as exported, without writing the files
			const point = { ...(await ce.recovered(sae.cfg, sae.weights)), step };
			run.ce.push(point);
			return point;
		};
		const ceSteps = new Set(CE_AT.map((f) => Math.max(1, Math.round(f * steps))));

		// Batches: the store in a shuffled order, a new order each epoch (seeded).
		let epoch = -1;
		let order = new Uint32Array(0);
		const batchRows = (step: number) => {
			const start = step * c.batch;
			const e = Math.floor(start / h.rows);
			if (e !== epoch) {
				epoch = e;
				const r = seededRandom(c.seed * 1_000_003 + e);
				order = Uint32Array.from({ length: h.rows }, (_, i) => i);
				for (let i = order.length - 1; i > 0; i--) {
					const j = Math.floor(r() * (i + 1));
					[order[i], order[j]] = [order[j], order[i]];
				}
			}
			const out = new Uint32Array(c.batch);
			for (let b = 0; b < c.batch; b++) out[b] = order[(start + b) % h.rows];
			return out;
		};

		const metricsEvery = Math.max(1, Math.floor(steps / 150));
		// The clock starts once the GPU has finished the harvest and the set-up, so the rate (and the
		// ETA) is training's alone, on a new run as on a resumed one.
		await device.queue.onSubmittedWorkDone();
		let t0 = performance.now();
		let timedSteps = 0;
		let pending: MetricPoint[] = [];
		for (let step = run.step; step < steps; step++) {
			if (host.flags.pause || host.flags.stop) {
				run.step = step;
				await capture();
				return await halt('training', step, steps, pending);
			}
			trainer.step(batchRows(step), learningRate(c, step, steps));
			timedSteps++;
			const tokensSeen = (step + 1) * c.batch;
			if ((step + 1) % metricsEvery === 0 || step + 1 === steps || ceSteps.has(step + 1)) {
				const mt = await trainer.metrics(); // also waits for the GPU: the queue stays short
				for (let j = 0; j < shape.n; j++) run.fires[j] += mt.fires[j];
				run.sampled += c.batch;
				const point: MetricPoint = {
					step: step + 1,
					tokens: tokensSeen,
					mse: mt.mse,
					nmse: 1 - mt.explainedVariance,
					explainedVariance: mt.explainedVariance,
					l0: mt.l0,
					dead: mt.dead / shape.n,
					aux: mt.aux
				};
				run.history.push(point);
				pending.push(point);
				const tps = (timedSteps * c.batch) / Math.max((performance.now() - t0) / 1000, 1e-3);
				const cePoint = ceSteps.has(step + 1) ? await measureCe(step + 1) : undefined;
				if (cePoint) {
					// The evaluation is not training time.
					t0 = performance.now();
					timedSteps = 0;
				}
				report({
					phase: 'training',
					done: step + 1,
					total: steps,
					tokensPerSecond: tps,
					etaSeconds: ((steps - step - 1) * c.batch) / tps,
					points: pending,
					ce: cePoint,
					reuse
				});
				pending = [];
			} else if ((step + 1) % 8 === 0) await device.queue.onSubmittedWorkDone();
			if ((step + 1) % c.checkpointEvery === 0 && step + 1 < steps) {
				run.step = step + 1;
				await checkpoint('running');
			}
		}
		run.step = steps;
		if (!run.ce.some((p) => p.step === steps)) await measureCe(steps);
		await checkpoint('done');
		report({ phase: 'done', done: steps, total: steps, points: pending, ce: run.ce.at(-1), reuse });
		return summarizeRun(run);
	} finally {
		trainer?.destroy(true);
		store?.destroy();
	}
}

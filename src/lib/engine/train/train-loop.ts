/**
 * The training loop: corpus → harvest into a GPU store → shuffled batches through the WGSL trainer,
 * with metrics streamed in small batches, CE loss recovered every quarter of the run, checkpoints to
 * IndexedDB every N steps and on pause, and resume from a checkpoint (the store is harvested again
 * from the same seeded corpus, the batch order is seeded per epoch, so a resumed run goes on as the
 * original would have). The engine (../index.ts) checks the model and hands this a TrainingHost.
 */
import type { SegmentRunner } from '../model/runner';
import { LoupeError } from '../errors';
import { SaeTrainer } from '../gpu/sae-trainer';
import { seededRandom } from '../sample/prng';
import { saveTrainRun } from '../store/db';
import { CeEvaluator } from './ce-recovered';
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
	type TrainCheckpoint,
	type TrainConfig,
	type TrainProgress,
	type TrainRunSummary,
	type TrainStatus
} from './training-run';

export interface CorpusRequest {
	name: string;
	text?: string;
	stories: number;
	storyTokens: number;
	seed: number;
}

/** What the loop needs of the engine: the model cut at the hook, ORT's device, a corpus, and the flags. */
export interface TrainingHost {
	runner: SegmentRunner;
	device: GPUDevice;
	/** The hook's canonical name (as the runner reports it). */
	hook: string;
	dModel: number;
	corpus(spec: CorpusRequest, onProgress: (done: number, total: number) => void): Promise<number[][]>;
	flags: { pause: boolean; stop: boolean };
}

/** CE loss recovered is measured at these fractions of the run. */
const CE_AT = [0.25, 0.5, 0.75, 1];

export async function trainSae(
	host: TrainingHost,
	c: TrainConfig,
	resumed: TrainCheckpoint | undefined,
	onProgress: (p: TrainProgress) => void
): Promise<TrainRunSummary> {
	const { device, runner, hook } = host;
	const shape = shapeOf(c, host.dModel);
	const id = resumed?.id ?? `run-${Date.now().toString(36)}`;
	const report = (p: Omit<TrainProgress, 'id' | 'tokensPerSecond' | 'etaSeconds' | 'points'> & Partial<TrainProgress>) =>
		onProgress({ id, tokensPerSecond: 0, etaSeconds: 0, points: [], ...p });
	let store: GPUBuffer | null = null;
	let trainer: SaeTrainer | null = null;
	try {
		const contexts = await host.corpus(
			{ name: 'training corpus', text: c.text, stories: c.stories, storyTokens: c.storyTokens, seed: c.seed },
			(done, total) => report({ phase: 'writing', done, total })
		);
		if (contexts.length < 2)
			throw new LoupeError('model-failed', 'The training corpus is too small.', 'Let the model write more stories, or paste more text.');
		// A few contexts held out for CE loss recovered; the rest is harvested.
		const heldOut = contexts.slice(-Math.min(4, Math.floor(contexts.length / 4) || 1));
		const trainContexts = contexts.slice(0, contexts.length - heldOut.length);
		const h = await harvest(
			device,
			runner,
			hook,
			shape.d,
			trainContexts,
			(done, rows) => report({ phase: 'harvesting', done, total: trainContexts.length, tokensPerSecond: rows }),
			() => host.flags.stop
		);
		store = h.store;
		if (h.rows < c.batch)
			throw new LoupeError(
				'model-failed',
				`The corpus gave ${h.rows} activations, fewer than one batch (${c.batch}).`,
				'Use a larger corpus or a smaller batch.'
			);
		const steps = Math.ceil(c.tokens / c.batch);
		trainer = await SaeTrainer.create(device, shape, c.batch, resumed?.params ?? initialParams(c, shape.d, new Float32Array(shape.d)));
		trainer.setStore(store, h.rows);
		trainer.setDeadAfter(deadWindow(c));
		let run: TrainCheckpoint;
		if (resumed) {
			run = resumed;
			trainer.setScale(run.scale ?? 1);
			trainer.restoreState(run.adam);
			if (run.sinceFired) trainer.setSinceFired(run.sinceFired);
		} else {
			const scale = await trainer.fitToStore();
			run = newCheckpoint(id, c, shape.d, steps, await trainer.readParams());
			run.scale = scale;
		}
		run.status = 'running';
		const t = trainer;
		const checkpoint = async (status: TrainStatus) => {
			run.params = await t.readParams();
			run.adam = await t.readState();
			run.sinceFired = await t.readSinceFired();
			run.status = status;
			run.updatedAt = new Date().toISOString();
			await saveTrainRun(run).catch((e) => {
				throw new LoupeError(
					'storage-full',
					`The checkpoint could not be saved (${e instanceof Error ? e.message : e}).`,
					'Free space in the Storage panel; training goes on but cannot resume after a reload.'
				);
			});
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
		let t0 = performance.now();
		let timedSteps = 0;
		let pending: MetricPoint[] = [];
		for (let step = run.step; step < steps; step++) {
			if (host.flags.pause || host.flags.stop) {
				run.step = step;
				await checkpoint(host.flags.stop ? 'stopped' : 'paused');
				report({ phase: host.flags.stop ? 'stopped' : 'paused', done: step, total: steps, points: pending });
				return summarizeRun(run);
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
					ce: cePoint
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
		report({ phase: 'done', done: steps, total: steps, points: pending, ce: run.ce.at(-1) });
		return summarizeRun(run);
	} finally {
		trainer?.destroy(true);
		store?.destroy();
	}
}

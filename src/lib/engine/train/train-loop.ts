/**
 * The training loop, phase by phase: the model writes the corpus (kept in the run from its first
 * story), activations are harvested into a GPU store, and shuffled batches go through the WGSL
 * trainer (one per unit: the SAE, or each layer's transcoder of a transcoder run, all stepped on the
 * same batches of tokens), with metrics streamed in small batches, CE loss recovered every quarter of the run and
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
import { TranscoderCe } from './transcoder-ce';
import { harvestPairs, type PairedHooks } from './transcoder-harvest';
import { rawTranscoder } from './transcoder-export';
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
	type CeRecovered,
	type MetricPoint,
	type RunPhase,
	type TrainCheckpoint,
	type TrainConfig,
	type TrainProgress,
	type TrainRunSummary,
	type TrainStatus,
	layerOfHook
} from './training-run';

/** What the loop needs of the engine: the model cut at the hook(s), ORT's device, the corpus, and the flags. */
export interface TrainingHost {
	runner: SegmentRunner;
	device: GPUDevice;
	/** The hook's canonical name (as the runner reports it). */
	hook: string;
	/** A transcoder run: each layer's input and output hooks (canonical), one per record, in the records' order. */
	pairs?: PairedHooks[];
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

/**
 * Trains the SAE (or the transcoders) of `c`; `resumed`: the run's records (an all-layers transcoder
 * run has one per layer, in the order of host.pairs), to go on from.
 */
export async function trainSae(
	host: TrainingHost,
	c: TrainConfig,
	resumed: TrainCheckpoint[] | undefined,
	onProgress: (p: TrainProgress) => void
): Promise<TrainRunSummary> {
	const { device, runner } = host;
	const pairs = host.pairs ?? null;
	const shape = shapeOf(c, host.dModel);
	const steps = Math.ceil(c.tokens / c.batch);
	const id = resumed?.[0]?.cfg.group ?? resumed?.[0]?.id ?? `run-${Date.now().toString(36)}`;
	const group = pairs && pairs.length > 1 ? id : undefined;
	const report: Report = (p) => onProgress({ id, tokensPerSecond: 0, etaSeconds: 0, points: [], ...p });
	const hooks = pairs ? pairs.map((p) => p.hookIn) : [host.hook];
	const runs =
		resumed ?? hooks.map((hook) => newCheckpoint(group ? `${id}.L${layerOfHook(hook)}` : id, { ...c, hook, group }, shape.d, steps, null));
	// The lead record holds what every unit shares (status, phase, corpus, step); the others follow it on each save.
	const run = runs[0];
	const save = async (status: TrainStatus = run.status) => {
		run.status = status;
		run.updatedAt = new Date().toISOString();
		for (const r of runs) {
			Object.assign(r, {
				status,
				updatedAt: run.updatedAt,
				phase: run.phase,
				corpus: run.corpus,
				corpusDone: run.corpusDone,
				step: run.step
			});
			await saveTrainRun(r).catch((e) => {
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
		}
	};
	/** Pause or Stop: the run is saved where it is and the call returns. */
	const halt = async (at: RunPhase, done: number, total: number, points: MetricPoint[] = []) => {
		const status = host.flags.stop ? 'stopped' : 'paused';
		run.phase = at;
		await save(status);
		report({ phase: status, at, done, total, points });
		return summarizeRun(run);
	};
	let stores: GPUBuffer[] = [];
	const trainers: SaeTrainer[] = [];
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
		const onHarvest = (done: number, rows: number) =>
			report({ phase: 'harvesting', done, total: trainContexts.length, ...pace(th, done, trainContexts.length - done, rows) });
		const halted = () => host.flags.pause || host.flags.stop;
		const h = pairs
			? await harvestPairs(device, runner, pairs, trainContexts, onHarvest, halted)
			: await harvest(device, runner, host.hook, shape.d, trainContexts, onHarvest, halted).then((o) => ({ ...o, stores: [o.store] }));
		stores = h.stores;
		if (h.halted)
			return await halt(run.params ? 'training' : 'harvesting', run.params ? run.step : 0, run.params ? steps : trainContexts.length);
		if (h.rows < c.batch)
			throw new LoupeError(
				'model-failed',
				`The corpus gave ${h.rows} activations, fewer than one batch (${c.batch}).`,
				'Use a larger corpus or a smaller batch.'
			);
		const reuse = c.tokens / h.rows;
		for (const [u, r] of runs.entries()) {
			const t = await SaeTrainer.create(device, shape, c.batch, r.params ?? initialParams(r.cfg, shape.d, new Float32Array(shape.d)));
			trainers.push(t);
			t.setStore(stores[u], h.rows);
			t.setDeadAfter(deadWindow(c));
			if (r.params) {
				t.setScale(r.scale ?? 1, r.scaleOut ?? r.scale ?? 1);
				t.restoreState(r.adamSkip ? { ...r.adam, m: [...r.adam.m, r.adamSkip.m], v: [...r.adam.v, r.adamSkip.v] } : r.adam);
				if (r.sinceFired) t.setSinceFired(r.sinceFired);
			} else {
				r.scale = await t.fitToStore();
				if (pairs) r.scaleOut = t.scales.out;
				r.params = await t.readParams();
			}
		}
		run.phase = 'training';
		const capture = async () => {
			for (const [u, t] of trainers.entries()) {
				const r = runs[u];
				r.params = await t.readParams();
				const state = await t.readState();
				// W_skip's moments are the last; the record keeps them apart (see TrainCheckpoint.adamSkip).
				if (shape.skip && pairs) r.adamSkip = { m: state.m.pop()!, v: state.v.pop()! };
				r.adam = state;
				r.sinceFired = await t.readSinceFired();
			}
		};
		const checkpoint = async (status: TrainStatus) => {
			await capture();
			await save(status);
		};
		const measureCe = pairs ? transcoderCe(host, pairs, heldOut, runs, trainers) : saeCe(host, heldOut, run, trainers[0]);
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
		let layerEv: number[] | undefined;
		for (let step = run.step; step < steps; step++) {
			if (host.flags.pause || host.flags.stop) {
				run.step = step;
				await capture();
				return await halt('training', step, steps, pending);
			}
			const rows = batchRows(step);
			const lr = learningRate(c, step, steps);
			for (const t of trainers) t.step(rows, lr);
			timedSteps++;
			const tokensSeen = (step + 1) * c.batch;
			if ((step + 1) % metricsEvery === 0 || step + 1 === steps || ceSteps.has(step + 1)) {
				for (const [u, t] of trainers.entries()) {
					const r = runs[u];
					const mt = await t.metrics(); // also waits for the GPU: the queue stays short
					for (let j = 0; j < shape.n; j++) r.fires[j] += mt.fires[j];
					r.sampled += c.batch;
					const point: MetricPoint = {
						step: step + 1,
						tokens: tokensSeen,
						mse: mt.mse,
						nmse: 1 - mt.explainedVariance,
						explainedVariance: mt.explainedVariance,
						l0: mt.l0,
						dead: mt.dead / shape.n,
						aux: mt.aux,
						...(pairs ? { layer: layerOfHook(r.cfg.hook) ?? u } : {})
					};
					r.history.push(point);
					pending.push(point);
				}
				const tps = (timedSteps * c.batch) / Math.max((performance.now() - t0) / 1000, 1e-3);
				const cePoint = ceSteps.has(step + 1) ? await measureCe(step + 1) : undefined;
				if (cePoint) {
					// The evaluation is not training time.
					t0 = performance.now();
					timedSteps = 0;
					layerEv = cePoint.layerEv;
				}
				report({
					phase: 'training',
					done: step + 1,
					total: steps,
					tokensPerSecond: tps,
					etaSeconds: ((steps - step - 1) * c.batch) / tps,
					points: pending,
					ce: cePoint?.point,
					layerEv,
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
		if (!run.ce.some((p) => p.step === steps)) layerEv = (await measureCe(steps)).layerEv;
		await checkpoint('done');
		report({ phase: 'done', done: steps, total: steps, points: pending, ce: run.ce.at(-1), reuse, layerEv });
		return summarizeRun(run);
	} finally {
		for (const t of trainers) t.destroy(true);
		for (const s of stores) s.destroy();
	}
}

type CeStep = (step: number) => Promise<{ point: CeRecovered & { step: number }; layerEv?: number[] }>;

/** An SAE's CE loss recovered at a step: the SAE as exported, spliced in at its hook. */
function saeCe(host: TrainingHost, heldOut: number[][], run: TrainCheckpoint, t: SaeTrainer): CeStep {
	const ce = new CeEvaluator(host.runner, host.device, host.hook, heldOut);
	return async (step) => {
		run.params = await t.readParams();
		const sae = trainedSae(run); // the SAE as exported, without writing the files
		const point = { ...(await ce.recovered(sae.cfg, sae.weights)), step };
		run.ce.push(point);
		return { point };
	};
}

/**
 * A transcoder run's CE loss recovered at a step, with all of its transcoders replacing their MLPs
 * at once; each layer's record keeps the point with its own held-out variance explained.
 */
function transcoderCe(
	host: TrainingHost,
	pairs: PairedHooks[],
	heldOut: number[][],
	runs: TrainCheckpoint[],
	trainers: SaeTrainer[]
): CeStep {
	const ce = new TranscoderCe(host.runner, host.device, pairs, heldOut);
	return async (step) => {
		for (const [u, t] of trainers.entries()) runs[u].params = await t.readParams();
		const { layerEv, ...m } = await ce.recovered(runs.map((r) => rawTranscoder(trainedSae(r))));
		runs.forEach((r, u) => r.ce.push({ ...m, explainedVariance: layerEv[u], step }));
		return { point: runs[0].ce.at(-1)!, layerEv };
	};
}

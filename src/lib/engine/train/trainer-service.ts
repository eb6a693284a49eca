/**
 * SAE and transcoder training as the engine offers it: a run on the loaded model's activations (new,
 * or resumed from its IndexedDB checkpoint; a transcoder run at one layer or at all of them, its
 * records resumed, listed and deleted together), Pause and Stop (in every phase: they also cut short the story the
 * model is writing), a short measurement of this machine for the page's estimate, the list of runs,
 * and a trained SAE exported as SAELens files or opened in the explorer. The loop itself is
 * train/train-loop.ts.
 */
import { LoupeError } from '../errors';
import type { ModelSession } from '../model/session';
import { corpusContexts } from '../model/corpus-contexts';
import type { SaeExplorer, SaeInfo } from '../sae/explorer';
import {
	initialParams,
	isTranscoderRun,
	layerOfHook,
	shapeOf,
	summarizeRun,
	toSaeLens,
	type TrainCheckpoint,
	type TrainConfig,
	type TrainProgress,
	type TrainRunSummary
} from './training-run';
import { trainSae } from './train-loop';
import type { PairedHooks } from './transcoder-harvest';
import type { CorpusSize, TrainRates } from './estimate';
import { SaeTrainer } from '../gpu/sae-trainer';
import { storageFrom } from '../gpu/buffers';
import type { Loaded } from '../model/session';
import { allRecords, deleteTrainRun, getTrainRun, listTrainRuns } from '../store/db';
import { checkpointFromDb } from '../store/checkpoint-record';
import { takeTrainingLock } from '../store/run-lock';

export class TrainerService {
	private flags = { pause: false, stop: false };

	constructor(
		private session: ModelSession,
		private explorer: SaeExplorer
	) {}

	/**
	 * Trains an SAE on the loaded model's activations at `cfg.hook` (or resumes run `resumeId` from
	 * its last checkpoint). Resolves when it finishes, is paused or is stopped; `onProgress` hears
	 * the phases and, in small batches, the metrics.
	 */
	async train(cfg: TrainConfig, resumeId: string | null, onProgress: (p: TrainProgress) => void): Promise<TrainRunSummary> {
		const m = this.trainable();
		const records = resumeId ? await this.records(resumeId) : undefined;
		const cp = records?.[0];
		if (resumeId && !cp) throw new LoupeError('not-found', 'That training run is not in this browser any more.', 'Start a new run.');
		if (cp && cp.cfg.model !== m.info.id)
			throw new LoupeError('model-failed', `That run trains on ${cp.cfg.model}, not ${m.info.id}.`, `Load ${cp.cfg.model} to resume it.`);
		const c = cp?.cfg ?? { ...cfg, model: m.info.id };
		checkSettings(c);
		const pairs = isTranscoderRun(c) ? this.pairs(m, c, records) : undefined;
		const hook = pairs ? pairs[0].hookIn : this.session.canonical(m, c.hook);
		return this.session.locked(async () => {
			this.flags = { pause: false, stop: false };
			this.session.clearStop();
			// One run trains at a time across tabs (Web Locks); another tab is refused with this run named.
			const release = await takeTrainingLock({ name: c.name, model: c.model, hook, runId: resumeId });
			try {
				await this.session.ensureCuts(m, pairs ? pairs.flatMap((p) => [p.hookIn, p.hookOut]) : [hook]);
				return await trainSae(
					{
						runner: m.runner,
						device: await this.session.gpuDevice(),
						hook,
						pairs,
						dModel: m.source.shape.dModel,
						story: (seed, tokens) => this.story(m, seed, tokens),
						text: (text) => corpusContexts(this.session, m, { name: 'training corpus', text }, () => {}),
						flags: this.flags
					},
					pairs ? { ...c, hook } : c,
					records,
					onProgress
				);
			} finally {
				release();
				this.flags = { pause: false, stop: false };
				this.session.clearStop();
			}
		});
	}

	/**
	 * A run's records: the one of `id`, or every layer's of an all-layers transcoder run (`id` its
	 * group or one of its records), by layer.
	 */
	private async records(id: string): Promise<TrainCheckpoint[]> {
		const one = await getTrainRun(id).catch(() => undefined);
		const group = one?.cfg.group ?? (one ? null : id);
		if (!group) return one ? [one] : [];
		const all = (await listTrainRuns()).filter((r) => r.cfg.group === group);
		return all.sort((a, b) => (layerOfHook(a.cfg.hook) ?? 0) - (layerOfHook(b.cfg.hook) ?? 0));
	}

	/**
	 * A transcoder run's layers: hook_mlp_in → hook_mlp_out at the layer of `c.hook`, at every layer
	 * (all layers), or at the layers of the records resumed. The model must offer those hooks.
	 */
	private pairs(m: Loaded, c: TrainConfig, records?: TrainCheckpoint[]): PairedHooks[] {
		const n = m.source.shape.nLayers;
		const d = m.source.shape.dModel;
		const layer = layerOfHook(c.hook);
		if (layer === null || layer >= n)
			throw new LoupeError(
				'model-failed',
				`A transcoder reads a layer's MLP input (blocks.L.hook_mlp_in, L from 0 to ${n - 1}), not ${c.hook}.`,
				'Choose a layer.'
			);
		const layers = records?.length ? records.map((r) => layerOfHook(r.cfg.hook) ?? 0) : c.allLayers ? [...Array(n).keys()] : [layer];
		return layers.map((l) => ({
			hookIn: this.session.canonical(m, `blocks.${l}.hook_mlp_in`),
			hookOut: this.session.canonical(m, `blocks.${l}.hook_mlp_out`),
			dIn: d,
			dOut: d
		}));
	}

	/** One story of the corpus, or null when Pause or Stop (the session's stop) cut it short. */
	private async story(m: Loaded, seed: number, tokens: number): Promise<number[] | null> {
		try {
			const [ids] = await corpusContexts(this.session, m, { name: 'training corpus', stories: 1, storyTokens: tokens, seed }, () => {});
			return this.session.stopped ? null : ids;
		} catch (e) {
			if (e instanceof DOMException && e.name === 'AbortError') return null;
			throw e;
		}
	}

	/**
	 * A short measurement of this machine for the page's estimate (estimate.ts): the model writes a
	 * few tokens, runs one forward pass over a context as long as the run's, and the trainer takes a
	 * few steps at the run's width and batch on random activations. A few seconds on SwiftShader.
	 */
	async measure(cfg: TrainConfig): Promise<TrainRates & { text: CorpusSize | null }> {
		const m = this.trainable();
		checkSettings(cfg);
		const pairs = isTranscoderRun(cfg) ? this.pairs(m, { ...cfg, allLayers: false }) : undefined;
		const hook = pairs ? pairs[0].hookIn : this.session.canonical(m, cfg.hook);
		return this.session.locked(async () => {
			this.session.clearStop();
			await this.session.ensureCuts(m, pairs ? [pairs[0].hookIn, pairs[0].hookOut] : [hook]);
			const device = await this.session.gpuDevice();
			const now = () => performance.now() / 1000;
			// Pasted text: its contexts (no writing). Stories: a first short one compiles the shaders, the second is timed.
			const text =
				cfg.text !== undefined ? await corpusContexts(this.session, m, { name: 'training corpus', text: cfg.text }, () => {}) : null;
			let writeTokenSeconds = 0;
			let sample = text?.[0] ?? [];
			let t: number;
			if (!text) {
				await this.story(m, cfg.seed, 2);
				const writeTokens = 6;
				t = now();
				sample = (await this.story(m, cfg.seed, writeTokens)) ?? [];
				writeTokenSeconds = (now() - t) / Math.max(1, sample.length - 1);
			}
			// One forward pass over a context as long as the run's (a sample context repeated).
			const longest = text ? Math.max(2, ...text.map((c) => c.length)) : cfg.storyTokens + 1;
			const forwardTokens = Math.min(128, m.source.shape.maxSeqLen, longest);
			const ids = Array.from({ length: forwardTokens }, (_, i) => sample[i % Math.max(1, sample.length)] ?? 1);
			const forward = async () => {
				m.runner.reset();
				(await m.runner.forward(ids)).logits.dispose();
				await device.queue.onSubmittedWorkDone();
			};
			// One pass, timed with whatever it compiles first: an estimate that errs long, kept short.
			t = now();
			await forward();
			const forwardSeconds = now() - t;
			// Trainer steps at the run's shape on random activations.
			const shape = shapeOf(cfg, m.source.shape.dModel);
			const rows = 2 * cfg.batch;
			const stride = shape.d + (shape.dOut ?? 0); // a transcoder's rows are [x | y]
			const store = storageFrom(
				device,
				Float32Array.from({ length: rows * stride }, (_, i) => Math.sin(i * 12.9898) % 1),
				'train.measure'
			);
			const trainer = await SaeTrainer.create(device, shape, cfg.batch, initialParams(cfg, shape.d, new Float32Array(shape.d)));
			try {
				trainer.setStore(store, rows);
				const batch = Uint32Array.from({ length: cfg.batch }, (_, i) => (i * 7) % rows);
				trainer.step(batch, cfg.lr);
				await device.queue.onSubmittedWorkDone();
				const timed = 2;
				t = now();
				for (let i = 0; i < timed; i++) trainer.step(batch, cfg.lr);
				await device.queue.onSubmittedWorkDone();
				const stepSeconds = (now() - t) / timed;
				return {
					writeTokenSeconds,
					forwardSeconds,
					forwardTokens,
					stepSeconds,
					stepBatch: cfg.batch,
					stepWidth: cfg.width,
					layers: pairs && cfg.allLayers ? m.source.shape.nLayers : 1,
					text: text && { contexts: text.length, tokens: text.reduce((a, c) => a + c.length - 1, 0) }
				};
			} finally {
				trainer.destroy();
			}
		});
	}

	/** The loaded model, if the trainer can read it (WebGPU, an fp32 residual). */
	private trainable(): Loaded {
		const m = this.session.requireModel();
		if (m.runner.backend !== 'webgpu')
			throw new LoupeError(
				'no-webgpu',
				'Training runs on the GPU, and this browser has no WebGPU (or the model runs on the CPU).',
				'Open Loupe in a browser with WebGPU to train SAEs.'
			);
		if (m.source.dtype !== 'float32')
			throw new LoupeError(
				'model-failed',
				`${m.info.name} computes its residual in ${m.source.dtype}; the trainer reads fp32.`,
				'Open the fp32 export of this model.'
			);
		return m;
	}

	// Both also stop the session, so a story the model is writing ends at its next token.
	pause() {
		this.flags.pause = true;
		this.session.stop();
	}

	stop() {
		this.flags.stop = true;
		this.session.stop();
	}

	async runs(): Promise<TrainRunSummary[]> {
		return (await listTrainRuns().catch(() => [])).map(summarizeRun);
	}

	/**
	 * The records the list leaves out because store/checkpoint-record.ts refuses them: each one's id
	 * (its key) and what is wrong, so the page can show them and offer Delete.
	 */
	async damagedRuns(): Promise<{ id: string; why: string }[]> {
		const out: { id: string; why: string }[] = [];
		for (const record of await allRecords('trainRuns').catch(() => []))
			try {
				checkpointFromDb(record);
			} catch (e) {
				const id = (record as { id?: unknown } | null)?.id;
				const message = e instanceof Error ? e.message : String(e);
				out.push({ id: typeof id === 'string' ? id : String(id), why: /is damaged: (.*?)\.?$/.exec(message)?.[1] ?? message });
			}
		return out;
	}

	/** Deletes a run: every layer's record of an all-layers transcoder run (`id` its group or one of them). */
	async deleteRun(id: string) {
		const all = await listTrainRuns().catch(() => []);
		const group = all.find((r) => r.id === id)?.cfg.group ?? id;
		for (const x of new Set([id, ...all.filter((r) => r.cfg.group === group).map((r) => r.id)])) await deleteTrainRun(x);
	}

	/** A trained SAE as SAELens files, to download (cfg.json + sae_weights.safetensors + sparsity.safetensors). */
	async exportSae(id: string): Promise<{ cfgJson: string; safetensors: Uint8Array; sparsity: Uint8Array }> {
		return toSaeLens(await this.checkpoint(id));
	}

	/** Opens a trained SAE in the explorer and the steering panel, through its SAELens files. */
	async openSae(id: string): Promise<SaeInfo> {
		this.session.requireModel();
		const { cfgJson, safetensors, sparsity } = toSaeLens(await this.checkpoint(id));
		const bytes = (b: Uint8Array) => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
		return this.explorer.attach(
			[
				{ name: 'cfg.json', buffer: new TextEncoder().encode(cfgJson).buffer as ArrayBuffer },
				{ name: 'sae_weights.safetensors', buffer: bytes(safetensors) },
				// Its densities from training: the card and the density filter have them before any corpus run.
				{ name: 'sparsity.safetensors', buffer: bytes(sparsity) }
			],
			`trained:${id}`
		);
	}

	private async checkpoint(id: string) {
		const cp = await getTrainRun(id);
		if (!cp) throw new LoupeError('not-found', 'That training run is not in this browser any more.', 'Train it again.');
		return cp;
	}
}

function checkSettings(c: TrainConfig) {
	if (!(
		c.width >= 1 &&
		c.batch >= 1 &&
		c.tokens >= c.batch &&
		(c.arch !== 'topk' || (c.k >= 1 && c.k <= c.width)) &&
		(c.arch !== 'jumprelu' || c.bandwidth > 0)
	))
		throw new LoupeError(
			'model-failed',
			'These settings cannot train: width, batch and tokens must be positive (tokens ≥ batch), k between 1 and the width, and the JumpReLU bandwidth positive.',
			'Change the settings.'
		);
}

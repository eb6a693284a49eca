/**
 * One SAE or transcoder training run in the tab, its three phases (the model writes the corpus, activations are
 * harvested at a hook straight into a GPU buffer — ORT's residual buffer → the store, a GPU-to-GPU
 * copy — and the WGSL trainer trains on shuffled batches) and what IndexedDB keeps of it: the corpus
 * from its first story on, then checkpoints every N steps and on pause, so a run resumes from any
 * phase (the store is harvested again from the kept corpus). A transcoder run learns
 * blocks.L.hook_mlp_in → blocks.L.hook_mlp_out at one layer or at every layer at once; an
 * all-layers run keeps one record per layer (each a whole checkpoint), tied by `cfg.group`.
 */
import type { SegmentRunner } from '../model/runner';
import { createStorage } from '../gpu/buffers';
import { initParams, type SaeParams, type TrainShape } from './reference';
import { seededRandom } from '../sample/prng';
import type { SaeConfig, SaeWeights } from '../sae/config';
import { writeSaeLens } from '../sae/formats/saelens';
import { logSparsityOf, writeSparsity } from '../sae/formats/sparsity';
import { LoupeError } from '../errors';
import { trainedTranscoder } from './transcoder-export';
import { outputHookOf } from './transcoder-harvest';

export interface TrainConfig {
	name: string;
	model: string;
	hook: string;
	arch: 'topk' | 'relu' | 'jumprelu';
	width: number; // d_sae
	k: number; // TopK: active latents per token
	/** TopK: the AuxK loss coefficient α (0: off); k_aux is d_in / 2, as SAELens takes it. */
	auxCoeff: number;
	l1: number; // ReLU: L1 coefficient
	/**
	 * JumpReLU: the L0 coefficient λ, the straight-through kernel's width ε and the initial threshold
	 * θ₀, on activations scaled to E‖x‖² = d_in. SAELens starts from θ₀ = ε = 0.001 for runs of
	 * billions of tokens; θ moves about lr per step in log space, so a run of a few hundred steps in a
	 * tab starts near where thresholds end up instead (on synthetic data θ₀ = 0.001 left L0 near 50
	 * after 600 steps, θ₀ = 1 about 7; tests/gpu/sae-train.test.ts guards these defaults).
	 */
	l0: number;
	bandwidth: number;
	threshold: number;
	tokens: number; // training tokens
	batch: number;
	lr: number;
	/** Corpus: stories the model writes (count, tokens each), or text. */
	stories: number;
	storyTokens: number;
	text?: string;
	seed: number;
	checkpointEvery: number; // steps
	/** What the run learns: an SAE at `hook` (absent: an SAE), or a transcoder from `hook` (blocks.L.hook_mlp_in) to that layer's hook_mlp_out. */
	kind?: 'sae' | 'transcoder';
	/** Transcoders: a skip connection W_skip [d_out, d_in] beside the features. */
	skip?: boolean;
	/** Transcoders: one at every layer, trained together on the same corpus (`hook` is then layer 0's). */
	allLayers?: boolean;
	/** In each record of an all-layers run: the run's id (its records are `${group}.L${layer}`). */
	group?: string;
}

export const isTranscoderRun = (c: TrainConfig) => c.kind === 'transcoder';

/** The layer a transcoder run's record reads (blocks.L.hook_mlp_in), or null for an SAE. */
export function layerOfHook(hook: string): number | null {
	const m = /^blocks\.(\d+)\.hook_mlp_in$/.exec(hook);
	return m ? Number(m[1]) : null;
}

export const defaultTrainConfig = (model: string, hook: string): TrainConfig => ({
	name: `SAE ${hook}`,
	model,
	hook,
	arch: 'topk',
	width: 512,
	k: 16,
	auxCoeff: 1 / 32,
	l1: 5,
	l0: 0.1,
	bandwidth: 0.1,
	threshold: 1,
	// Sized to finish in a few minutes on a laptop GPU: writing the corpus (one token at a time) is
	// the slow part, so 32 stories of 100 tokens, each activation reused ~14 times over 40k tokens.
	tokens: 40_000,
	batch: 256,
	lr: 4e-3,
	stories: 32,
	storyTokens: 100,
	seed: 1,
	checkpointEvery: 50
});

export interface MetricPoint {
	step: number;
	tokens: number;
	mse: number;
	nmse: number; // mse / batch variance = 1 − explained variance
	explainedVariance: number;
	l0: number;
	dead: number; // fraction of latents that fired in none of the last `deadWindow` tokens
	aux?: number; // AuxK loss (TopK)
	/** An all-layers transcoder run's point: the layer it is of. */
	layer?: number;
}

export interface CeRecovered {
	clean: number;
	spliced: number;
	zeroAblated: number;
	recovered: number; // (zero − spliced) / (zero − clean)
	/** Transcoders: how many MLPs the transcoders replaced (all of the run's), and this layer's held-out fraction of MLP-output variance explained. */
	replaced?: number;
	explainedVariance?: number;
}

export type TrainStatus = 'running' | 'paused' | 'stopped' | 'done';

/** The phases of a run, in order; Pause and Stop act in each. */
export type RunPhase = 'writing' | 'harvesting' | 'training';

/** What IndexedDB keeps of a run: enough to resume it, list it, open it and export it. */
export interface TrainCheckpoint {
	id: string;
	cfg: TrainConfig;
	dIn: number;
	status: TrainStatus;
	/** Where the run is (absent in runs saved before phases were kept: those were training). */
	phase?: RunPhase;
	/**
	 * The corpus as contexts (BOS first), kept from the first story on: a run paused while the model
	 * writes goes on from the next story, and a resumed run reads the corpus it started with.
	 */
	corpus?: number[][];
	corpusDone?: boolean;
	step: number;
	steps: number;
	/** null until training starts (a run paused while the model writes has no SAE yet). */
	params: SaeParams | null;
	adam: { t: number; m: Float32Array[]; v: Float32Array[] };
	history: MetricPoint[];
	ce: (CeRecovered & { step: number })[]; // measured every quarter of the run
	fires: Float64Array; // per latent: times seen active in sampled batches
	sampled: number; // tokens in the sampled batches
	sinceFired?: Uint32Array; // per latent: training tokens since it last fired (the GPU's dead clock)
	scale?: number; // the trainer saw activations times this (E‖x‖² = d_in); params are in those units
	/** Transcoders: the target (hook_mlp_out) was seen times this (E‖y‖² = d_out). */
	scaleOut?: number;
	/**
	 * Transcoders with W_skip: its Adam moments, kept apart from `adam` (whose m and v hold W_enc,
	 * b_enc, W_dec, b_dec and JumpReLU's log θ, as store/checkpoint-record.ts checks them).
	 */
	adamSkip?: { m: Float32Array; v: Float32Array };
	updatedAt: string;
	createdAt: string;
}

export interface TrainProgress {
	phase: RunPhase | 'paused' | 'stopped' | 'done';
	/** Paused or stopped: the phase it was in. */
	at?: RunPhase;
	id: string;
	/** Stories written, contexts harvested or steps trained, of `total`. */
	done: number;
	total: number;
	/** Tokens the model wrote, activations harvested or tokens trained on, per second in this phase. */
	tokensPerSecond: number;
	/** Transcoders: each layer's held-out fraction of MLP-output variance explained at the last CE measurement. */
	layerEv?: number[];
	/** Seconds left in this phase (0 when not yet known). */
	etaSeconds: number;
	/** Training tokens over harvested activations: how many times each activation is used. */
	reuse?: number;
	points: MetricPoint[]; // new since the last report
	ce?: CeRecovered & { step: number };
}

export interface TrainRunSummary {
	id: string;
	name: string;
	cfg: TrainConfig;
	status: TrainStatus;
	phase: RunPhase;
	/** Contexts of the corpus written so far (stories), and whether an SAE exists to open or export. */
	corpusContexts: number;
	trained: boolean;
	step: number;
	steps: number;
	last: MetricPoint | null;
	ce: (CeRecovered & { step: number }) | null;
	ceHistory: (CeRecovered & { step: number })[];
	history: MetricPoint[];
	density: { from: number; to: number; count: number }[];
	updatedAt: string;
	kind: 'sae' | 'transcoder';
	/** An all-layers transcoder run's id (shared by its layers' records), and this record's layer. */
	group: string | null;
	layer: number | null;
}

export function summarizeRun(cp: TrainCheckpoint): TrainRunSummary {
	return {
		id: cp.id,
		name: cp.cfg.name,
		cfg: cp.cfg,
		status: cp.status,
		phase: cp.phase ?? 'training',
		corpusContexts: cp.corpus?.length ?? 0,
		trained: cp.params !== null,
		step: cp.step,
		steps: cp.steps,
		last: cp.history.at(-1) ?? null,
		ce: cp.ce.at(-1) ?? null,
		ceHistory: cp.ce,
		history: cp.history,
		density: densityHistogram(cp),
		updatedAt: cp.updatedAt,
		kind: cp.cfg.kind ?? 'sae',
		group: cp.cfg.group ?? null,
		layer: isTranscoderRun(cp.cfg) ? layerOfHook(cp.cfg.hook) : null
	};
}

/**
 * A latent is dead once it has fired in none of this many training tokens: a quarter of a short run,
 * 10M tokens at most (Gao et al.'s window). It drives the dead fraction shown and AuxK.
 */
export function deadWindow(cfg: TrainConfig): number {
	return Math.max(cfg.batch, Math.min(10_000_000, Math.floor(cfg.tokens / 4)));
}

/** Learning rate: linear warm-up over the first 5 %, constant, linear decay over the last 20 %. */
export function learningRate(cfg: TrainConfig, step: number, steps: number): number {
	const warm = Math.max(1, Math.floor(0.05 * steps));
	const decay = Math.floor(0.8 * steps);
	if (step < warm) return (cfg.lr * (step + 1)) / warm;
	if (step >= decay) return (cfg.lr * (steps - step)) / Math.max(1, steps - decay);
	return cfg.lr;
}

/** Harvests the residual at `hook` for each context (BOS left out) into one GPU buffer. */
export async function harvest(
	device: GPUDevice,
	runner: SegmentRunner,
	hook: string,
	dIn: number,
	contexts: number[][],
	onProgress: (done: number, rows: number) => void,
	shouldStop: () => boolean
): Promise<{ store: GPUBuffer; rows: number; halted: boolean }> {
	const total = contexts.reduce((a, c) => a + c.length - 1, 0);
	const store = createStorage(device, total * dIn * 4, 'train.store');
	let rows = 0;
	for (const [i, ids] of contexts.entries()) {
		if (shouldStop()) return { store, rows, halted: true };
		runner.reset();
		const { logits } = await runner.forward(ids, (name, residual, n) => {
			if (name !== hook || n < 2) return;
			if (residual.location !== 'gpu-buffer') throw new Error('Training needs the model on WebGPU.');
			const enc = device.createCommandEncoder({ label: 'harvest' });
			enc.copyBufferToBuffer(residual.gpuBuffer as GPUBuffer, dIn * 4, store, rows * dIn * 4, (n - 1) * dIn * 4);
			device.queue.submit([enc.finish()]);
			rows += n - 1;
		});
		logits.dispose();
		// ORT returns before the GPU is done: wait, so progress and its ETA are the real work's.
		await device.queue.onSubmittedWorkDone();
		onProgress(i + 1, rows);
	}
	return { store, rows, halted: false };
}

export function shapeOf(cfg: TrainConfig, dIn: number): TrainShape {
	const aux = cfg.arch === 'topk' && (cfg.auxCoeff ?? 0) > 0;
	return {
		d: dIn,
		n: cfg.width,
		arch: cfg.arch,
		k: cfg.k,
		l1: cfg.l1,
		l0: cfg.l0 ?? 0,
		bandwidth: cfg.bandwidth ?? 0.001,
		auxK: aux ? Math.max(1, Math.min(cfg.width, Math.floor(dIn / 2))) : 0,
		auxCoeff: aux ? cfg.auxCoeff : 0,
		// A transcoder's target, hook_mlp_out, is d_model wide as its input is.
		...(isTranscoderRun(cfg) ? { dOut: dIn, skip: Boolean(cfg.skip) } : {})
	};
}

export function newCheckpoint(id: string, cfg: TrainConfig, dIn: number, steps: number, params: SaeParams | null): TrainCheckpoint {
	const now = new Date().toISOString();
	return {
		id,
		cfg,
		dIn,
		status: 'running',
		phase: params ? 'training' : 'writing',
		step: 0,
		steps,
		params,
		adam: { t: 0, m: [], v: [] },
		history: [],
		ce: [],
		fires: new Float64Array(cfg.width),
		sampled: 0,
		sinceFired: new Uint32Array(cfg.width),
		updatedAt: now,
		createdAt: now
	};
}

export function initialParams(cfg: TrainConfig, dIn: number, mean: Float32Array): SaeParams {
	// Each layer of a transcoder run starts from its own draw.
	const random = seededRandom(cfg.seed * 7919 + 1 + 104_729 * (layerOfHook(cfg.hook) ?? 0));
	const p = initParams(shapeOf(cfg, dIn), random, mean);
	p.logThreshold?.fill(Math.log(cfg.threshold ?? 1));
	return p;
}

/**
 * Parameters trained on activations times s, as weights for the activations themselves:
 *   pre = (s·x − b_dec) W_enc + b_enc = (x − b_dec/s)(s·W_enc) + b_enc;   x̂ = (acts W_dec + b_dec) / s
 * so W_enc·s, W_dec/s, b_dec/s; b_enc and JumpReLU's θ (on pre) stay. The export reads raw activations.
 */
export function foldScale(p: SaeParams, s: number): SaeWeights {
	const out: SaeWeights = {
		wEnc: p.wEnc.map((w) => w * s),
		bEnc: p.bEnc.slice(),
		wDec: p.wDec.map((w) => w / s),
		bDec: p.bDec.map((b) => b / s)
	};
	if (p.logThreshold) out.threshold = p.logThreshold.map(Math.exp);
	return out;
}

/** The trained SAE as Loupe's SAE config and weights for raw activations (the training scale folded in). */
export function trainedSae(cp: TrainCheckpoint): { cfg: SaeConfig; weights: SaeWeights } {
	if (!cp.params)
		throw new LoupeError(
			'not-found',
			`"${cp.cfg.name}" has no ${isTranscoderRun(cp.cfg) ? 'transcoder' : 'SAE'} yet: it was paused or stopped before training began.`,
			'Resume it: it goes on from where it was.'
		);
	if (isTranscoderRun(cp.cfg)) return transcoderOf(cp, cp.params);
	const cfg: SaeConfig = {
		architecture: cp.cfg.arch,
		dIn: cp.dIn,
		dSae: cp.cfg.width,
		hookName: cp.cfg.hook,
		k: cp.cfg.arch === 'topk' ? cp.cfg.k : undefined,
		applyBDecToInput: true,
		normalizeActivations: 'none',
		centerInput: false,
		modelName: cp.cfg.model,
		// Contexts are BOS + storyTokens tokens (pasted text: as the corpus cut it), BOS left out of training.
		contextSize: cp.cfg.text ? undefined : cp.cfg.storyTokens + 1,
		prependBos: true,
		format: 'SAELens (trained in Loupe)',
		dtype: 'float32',
		name: cp.cfg.name
	};
	return { cfg, weights: foldScale(cp.params, cp.scale ?? 1) };
}

/** A transcoder run's record as SaeConfig and weights, the scales still apart (writeSaeLens folds them). */
function transcoderOf(cp: TrainCheckpoint, p: SaeParams) {
	return trainedTranscoder(
		p,
		shapeOf(cp.cfg, cp.dIn),
		{ in: cp.scale ?? 1, out: cp.scaleOut ?? 1 },
		{
			hookName: cp.cfg.hook,
			hookNameOut: outputHookOf(cp.cfg.hook),
			modelName: cp.cfg.model,
			contextSize: cp.cfg.text ? undefined : cp.cfg.storyTokens + 1,
			name: cp.cfg.group ? `${cp.cfg.name} (layer ${layerOfHook(cp.cfg.hook)})` : cp.cfg.name
		}
	);
}

/**
 * The trained SAE as SAELens 6 writes it (cfg.json + sae_weights.safetensors, formats/saelens.ts), and
 * sparsity.safetensors (log10 firing rate per latent over the sampled batches, as SAELens's trainer
 * writes it next to the SAE: sae_trainer.py _log_feature_sparsity).
 */
export function toSaeLens(cp: TrainCheckpoint): { cfgJson: string; safetensors: Uint8Array; sparsity: Uint8Array } {
	const { cfg, weights } = trainedSae(cp);
	const sparsity = writeSparsity(logSparsityOf(cp.fires, cp.sampled));
	const loupe_training = {
		tokens: cp.step * cp.cfg.batch,
		steps: cp.step,
		lr: cp.cfg.lr,
		batch_size: cp.cfg.batch,
		l1_coefficient: cp.cfg.arch === 'relu' ? cp.cfg.l1 : null,
		l0_coefficient: cp.cfg.arch === 'jumprelu' ? cp.cfg.l0 : null,
		jumprelu_bandwidth: cp.cfg.arch === 'jumprelu' ? cp.cfg.bandwidth : null,
		activation_scale: cp.scale ?? 1,
		...(isTranscoderRun(cp.cfg) ? { target_scale: cp.scaleOut ?? 1, skip_connection: Boolean(cp.cfg.skip) } : {}),
		aux_loss_coefficient: cp.cfg.arch === 'topk' ? (cp.cfg.auxCoeff ?? 0) : null
	};
	return { ...writeSaeLens(cfg, weights, { extra: { loupe_training } }), sparsity };
}

/** Density histogram (log10 of each latent's firing rate) from the sampled batches. */
export function densityHistogram(cp: TrainCheckpoint, bins = 20): { from: number; to: number; count: number }[] {
	const lo = -6;
	const out = Array.from({ length: bins }, (_, i) => ({ from: lo + (i * -lo) / bins, to: lo + ((i + 1) * -lo) / bins, count: 0 }));
	for (const f of cp.fires) {
		const rate = cp.sampled ? f / cp.sampled : 0;
		const x = rate > 0 ? Math.log10(rate) : lo;
		const b = Math.min(bins - 1, Math.max(0, Math.floor(((x - lo) / -lo) * bins)));
		out[b].count++;
	}
	return out;
}

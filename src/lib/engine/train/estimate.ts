/**
 * How long a training run will take here, before it starts: rates measured on this machine (one
 * short story, one forward pass, a few trainer steps) scaled to the run's settings, phase by phase;
 * and how many times a corpus smaller than the training tokens is reused. Pure arithmetic: the
 * measurement itself is TrainerService.measure.
 */
import type { TrainConfig } from './training-run';

/** What was measured here, for the model and hook the run reads. */
export interface TrainRates {
	/** Seconds per token the model writes (sampling one token at a time). */
	writeTokenSeconds: number;
	/** Seconds of one forward pass over a context of `forwardTokens` tokens (harvest, CE loss recovered). */
	forwardSeconds: number;
	forwardTokens: number;
	/** Seconds per trainer step at `stepBatch` × `stepWidth` (scaled by batch × width for others). */
	stepSeconds: number;
	stepBatch: number;
	stepWidth: number;
	/** Units stepped together: the layers of an all-layers transcoder run (1: an SAE, one transcoder). */
	layers?: number;
}

/** The corpus a run reads: its contexts and tokens (BOS left out), before the held-out ones are set aside. */
export interface CorpusSize {
	contexts: number;
	tokens: number;
}

export interface RunEstimate {
	writing: number;
	harvesting: number;
	training: number;
	total: number; // seconds
	/** Activations harvested (the held-out contexts left out) and how many times each is used. */
	activations: number;
	reuse: number;
}

/** Contexts held out for CE loss recovered (as the loop takes them): up to 4, a quarter of a small corpus. */
export function heldOutCount(contexts: number): number {
	return Math.min(4, Math.floor(contexts / 4) || 1);
}

/** CE loss recovered is measured at these fractions of the run. */
export const CE_AT = [0.25, 0.5, 0.75, 1];

export function storiesCorpus(cfg: TrainConfig): CorpusSize {
	return { contexts: cfg.stories, tokens: cfg.stories * cfg.storyTokens };
}

export function estimateRun(cfg: TrainConfig, rates: TrainRates, corpus: CorpusSize, text: boolean): RunEstimate {
	const perContext = corpus.contexts ? corpus.tokens / corpus.contexts : 0;
	const held = heldOutCount(corpus.contexts);
	const harvested = Math.max(0, corpus.contexts - held);
	const activations = Math.round(harvested * perContext);
	const forward = rates.forwardSeconds * Math.max(1, (perContext + 1) / rates.forwardTokens);
	const steps = Math.ceil(cfg.tokens / cfg.batch);
	const step = rates.stepSeconds * ((cfg.batch * cfg.width) / (rates.stepBatch * rates.stepWidth)) * (rates.layers ?? 1);
	// CE loss recovered: the clean and zero-ablated passes once, a spliced pass at each quarter.
	const ce = held * (2 + CE_AT.length) * forward;
	const writing = text ? 0 : corpus.tokens * rates.writeTokenSeconds;
	const harvesting = harvested * forward;
	const training = steps * step + ce;
	return {
		writing,
		harvesting,
		training,
		total: writing + harvesting + training,
		activations,
		reuse: activations ? cfg.tokens / activations : 0
	};
}

/**
 * Transcoders as plain TypeScript: an SAE encoder that reads one hook (blocks.L.hook_mlp_in) and a
 * decoder that writes another (blocks.L.hook_mlp_out), d_out wide. The forward is SAELens's
 * (sae_lens/saes/transcoder.py):
 *   acts = activation(x · W_enc + b_enc)        (Transcoder.process_sae_in: b_dec is never subtracted,
 *                                                 it is d_out wide; apply_b_dec_to_input is refused)
 *   out  = acts · W_dec + b_dec                  (Transcoder.decode: no output normalisation)
 *        + x · W_skipᵀ                           (SkipTranscoder.forward, W_skip [d_out, d_in], raw x)
 * ReLU (transcoder, skip_transcoder), JumpReLU (jumprelu_transcoder: relu(pre)·(pre > θ), Gemma Scope
 * 2) and TopK (trained in Loupe) share Sae's activations. Gemma Scope 2's affine_skip_connection is
 * [d_in, d_out] (out += x · A) and is stored here transposed, as W_skip.
 *
 * This is the plain transcoder the attribution graph reads: cfg (dIn, dSae, dOut, hookName,
 * hookNameOut) and weights (wEnc [dIn, dSae], bEnc, wDec [dSae, dOut], bDec [dOut], threshold?, wSkip?).
 */
import { LoupeError } from '../errors';
import { isTranscoder, type SaeConfig, type SaeWeights } from './config';
import { Sae } from './sae';

export type TranscoderConfig = SaeConfig & { hookNameOut: string; dOut: number };

export class Transcoder {
	readonly encoder: Sae;

	constructor(
		readonly cfg: TranscoderConfig,
		readonly w: SaeWeights
	) {
		this.encoder = Sae.create(cfg, w);
	}

	static fromSae(cfg: SaeConfig, w: SaeWeights): Transcoder {
		if (!isTranscoder(cfg))
			throw new LoupeError('not-an-sae', `${cfg.name} is an SAE, not a transcoder (it names no output hook).`, 'Choose a transcoder.');
		return new Transcoder(cfg, w);
	}

	/** Feature activations [tokens, dSae] of the input hook's vectors x [tokens, dIn]. */
	encode(x: Float32Array, tokens: number): Float32Array {
		return this.encoder.encode(x, tokens);
	}

	/** acts · W_dec + b_dec [tokens, dOut] (no skip term). */
	decode(acts: Float32Array, tokens: number): Float32Array {
		return this.encoder.decode(acts, tokens);
	}

	/** x · W_skipᵀ added into out [tokens, dOut], in place (nothing without a skip connection). */
	addSkip(x: Float32Array, tokens: number, out: Float32Array): Float32Array {
		const { dIn, dOut } = this.cfg;
		const ws = this.w.wSkip;
		if (!ws) return out;
		for (let t = 0; t < tokens; t++)
			for (let o = 0; o < dOut; o++) {
				let a = 0;
				for (let i = 0; i < dIn; i++) a += x[t * dIn + i] * ws[o * dIn + i];
				out[t * dOut + o] += a;
			}
		return out;
	}

	/** The predicted output hook [tokens, dOut] and the activations. */
	forward(x: Float32Array, tokens: number): { out: Float32Array; acts: Float32Array } {
		const acts = this.encode(x, tokens);
		return { out: this.addSkip(x, tokens, this.decode(acts, tokens)), acts };
	}
}

/**
 * What a transcoder's cfg must hold, checked once for every format: SAELens refuses b_dec on the
 * input (TranscoderConfig.__post_init__), and Loupe runs transcoders on the raw input hook only
 * (SAELens normalises a transcoder's input but never undoes it on the output; no published
 * transcoder uses it).
 */
export function checkTranscoderConfig(cfg: SaeConfig, file: string) {
	if (!isTranscoder(cfg)) return;
	if (cfg.applyBDecToInput)
		throw new LoupeError(
			'not-an-sae',
			`${file} is a transcoder with apply_b_dec_to_input true; b_dec is d_out wide and SAELens refuses that for transcoders.`,
			'Set "apply_b_dec_to_input": false in its cfg.json.'
		);
	if (cfg.normalizeActivations === 'layer_norm' || cfg.normalizeActivations === 'constant_norm_rescale')
		throw new LoupeError(
			'not-an-sae',
			`${file} is a transcoder that normalises its input (${cfg.normalizeActivations}); Loupe runs transcoders on the hook's vectors as they are.`,
			'Choose a transcoder with normalize_activations "none".'
		);
	if (!(Number.isSafeInteger(cfg.dOut) && cfg.dOut > 0))
		throw new LoupeError('not-an-sae', `${file}: d_out ${cfg.dOut} is not a positive integer.`, 'Fix "d_out" in its config.');
}

/**
 * The plain object the attribution graph reads (attribution/transcoder.ts's Transcoder): the layer
 * from the input hook, JumpReLU when a threshold is there. TopK transcoders have no such form: their
 * active set is not a per-latent threshold.
 */
export function plainTranscoder(cfg: SaeConfig, w: SaeWeights) {
	const tc = Transcoder.fromSae(cfg, w).cfg;
	const layer = Number(/^blocks\.(\d+)\./.exec(tc.hookName)?.[1] ?? NaN);
	if (tc.architecture === 'topk')
		throw new LoupeError(
			'sae-mismatch',
			`${tc.name} is a TopK transcoder; the attribution graph needs ReLU or JumpReLU ones (an activation set by each latent alone).`,
			'Train or load ReLU or JumpReLU transcoders for the graph.'
		);
	return {
		layer,
		dIn: tc.dIn,
		dSae: tc.dSae,
		dOut: tc.dOut,
		wEnc: w.wEnc,
		bEnc: w.bEnc,
		wDec: w.wDec,
		bDec: w.bDec,
		threshold: tc.architecture === 'jumprelu' ? w.threshold : undefined,
		wSkip: w.wSkip,
		name: tc.name
	};
}

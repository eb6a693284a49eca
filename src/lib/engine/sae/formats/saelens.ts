/**
 * The SAELens folder: `cfg.json` + `sae_weights.safetensors` (W_enc [d_in,d_sae], W_dec [d_sae,d_in],
 * b_enc, b_dec, threshold for JumpReLU, topk_threshold for BatchTopK checkpoints). The cfg is read
 * by SAELens's rules (saelens-config.ts); the weights are turned into what SAELens runs:
 *  - TopK with rescale_acts_by_decoder_norm: SAELens scales pre-activations by ‖W_dec[f]‖ before
 *    TopK and divides activations by it before decoding (saes/topk_sae.py TopKSAE.encode/decode);
 *    that is the same SAE as the one with the norms folded in (_fold_norm_topk: W_enc·n, b_enc·n,
 *    W_dec/n), which is what Loupe's kernels run;
 *  - BatchTopK checkpoints: as save_inference_model writes them (batchtopk_sae.py): norms folded as
 *    above, then a JumpReLU whose threshold is topk_threshold for every latent.
 * Transcoders (architecture transcoder / skip_transcoder / jumprelu_transcoder): W_dec [d_sae, d_out],
 * b_dec [d_out], and for skip_transcoder W_skip [d_out, d_in] (sae/transcoder.ts has the forward).
 * Writes what SAELens 6's SAE.save_model writes (SAEConfig.to_dict: the dataclass fields, `metadata`
 * with sae_lens_version, `architecture`), so an SAE made here loads in SAELens with its hook.
 */
import { LoupeError } from '../../errors';
import { isTranscoder, type SaeConfig, type SaeWeights } from '../config';
import { readSafetensors, writeSafetensors } from './safetensors';
import { takeMatrix, takeWeights } from './weights';
import { readSaeLensConfig, SAELENS_FORMAT_VERSION } from './saelens-config';
import type { NamedTensor } from './tensors';

export { parseSaeLensConfig } from './saelens-config';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** _fold_norm_topk (saes/topk_sae.py): W_enc[:, f]·n_f, b_enc[f]·n_f, W_dec[f]/n_f with n_f = ‖W_dec[f]‖. */
export function foldDecoderNorms(w: SaeWeights, dIn: number, dSae: number): void {
	for (let f = 0; f < dSae; f++) {
		let s = 0;
		for (let i = 0; i < dIn; i++) s += w.wDec[f * dIn + i] ** 2;
		const n = Math.sqrt(s);
		if (!(n > 0)) continue; // a zero row never fires either way
		for (let i = 0; i < dIn; i++) {
			w.wDec[f * dIn + i] /= n;
			w.wEnc[i * dSae + f] *= n;
		}
		w.bEnc[f] *= n;
	}
}

/**
 * SAE.fold_activation_norm_scaling_factor: W_enc·s, W_dec/s, b_dec/s (thresholds act on pre and stay).
 * A transcoder trained on input × s and target × sOut: W_enc·s, W_dec/sOut, b_dec/sOut, W_skip·s/sOut.
 */
export function foldActivationScale(w: SaeWeights, s: number, sOut = s): void {
	for (let i = 0; i < w.wEnc.length; i++) w.wEnc[i] *= s;
	for (let i = 0; i < w.wDec.length; i++) w.wDec[i] /= sOut;
	for (let i = 0; i < w.bDec.length; i++) w.bDec[i] /= sOut;
	if (w.wSkip) for (let i = 0; i < w.wSkip.length; i++) w.wSkip[i] *= s / sOut;
}

export interface SaeLensReadOptions {
	/** A release's config_overrides (merged into cfg.json before SAELens's defaulting). */
	overrides?: Json;
	/** A scale the SAE was trained on activations times, still apart from the weights (activation_scaler.json). */
	scalingFactor?: number;
	/** A release's norm_scaling_factor: folded in only for normalize_activations "expected_average_only_in", as SAE.from_pretrained does. */
	normScalingFactor?: number;
}

export function readSaeLens(
	cfgText: string,
	weights: ArrayBuffer,
	names = { cfg: 'cfg.json', weights: 'sae_weights.safetensors' },
	opts: SaeLensReadOptions = {}
): { cfg: SaeConfig; weights: SaeWeights } {
	const { cfg, rescaleActsByDecoderNorm, batchTopK } = readSaeLensConfig(cfgText, names.cfg, opts.overrides);
	const tensors = readSafetensors(weights, names.weights);
	const conversions = cfg.conversions ?? [];
	let topkThreshold: NamedTensor | undefined;
	if (batchTopK) {
		topkThreshold = tensors.get('topk_threshold');
		if (!topkThreshold || topkThreshold.data.length !== 1)
			throw new LoupeError(
				'not-an-sae',
				`${names.cfg} is a BatchTopK SAE (architecture "batchtopk"), which SAELens does not load for inference, and ${names.weights} has no scalar topk_threshold to turn it into the JumpReLU SAE SAELens saves for inference.`,
				'Save it with SAELens\'s save_inference_model (architecture "jumprelu" with a threshold), or choose the inference files of this SAE.'
			);
	}
	const w = takeWeights(
		tensors,
		cfg,
		names.weights,
		{ wEnc: 'W_enc', wDec: 'W_dec', bEnc: 'b_enc', bDec: 'b_dec', threshold: 'threshold' },
		{ thresholdOptional: batchTopK }
	);
	if (isTranscoder(cfg)) {
		const wSkip = takeMatrix(
			tensors,
			'W_skip',
			names.weights,
			[cfg.dOut, cfg.dIn],
			`a skip connection from d_in ${cfg.dIn} to d_out ${cfg.dOut}`
		);
		if (cfg.skip && !wSkip)
			throw new LoupeError(
				'not-an-sae',
				`${names.cfg} is a skip transcoder, but ${names.weights} has no W_skip tensor.`,
				'Choose the weights file that belongs to this transcoder.'
			);
		if (!cfg.skip && wSkip)
			throw new LoupeError(
				'not-an-sae',
				`${names.weights} has a W_skip tensor, but ${names.cfg} says architecture ${cfg.architecture === 'relu' ? '"transcoder"' : `"${cfg.architecture}_transcoder"`}, which SAELens runs without it.`,
				'Set "architecture" to "skip_transcoder" in cfg.json if the skip connection belongs to the forward, or choose the matching weights.'
			);
		if (wSkip) w.wSkip = wSkip;
	}
	if (rescaleActsByDecoderNorm) {
		foldDecoderNorms(w, cfg.dIn, cfg.dSae);
		conversions.push('rescale_acts_by_decoder_norm: decoder norms folded into the encoder (the same activations SAELens computes)');
	}
	if (topkThreshold) {
		w.threshold = new Float32Array(cfg.dSae).fill(topkThreshold.data[0]);
		conversions.push(
			`a BatchTopK checkpoint, run as SAELens saves it for inference: JumpReLU with threshold ${topkThreshold.data[0]} (topk_threshold) on every latent`
		);
	}
	const scale = opts.scalingFactor ?? (cfg.normalizeActivations === 'expected_average_only_in' ? opts.normScalingFactor : undefined);
	if (scale !== undefined && scale !== 1) {
		foldActivationScale(w, scale);
		conversions.push(`trained on activations × ${scale}: folded into the weights (SAELens's fold_activation_norm_scaling_factor)`);
	}
	if (scale !== undefined && cfg.normalizeActivations === 'expected_average_only_in') cfg.normalizeActivations = 'none';
	cfg.conversions = conversions;
	return { cfg, weights: w };
}

export interface SaeLensWriteOptions {
	/** Extra top-level keys (SAELens ignores keys its config class lacks). */
	extra?: Json;
	/** Metadata beyond what the config holds (dataset_path, context_size, …). */
	metadata?: Json;
}

/** The SAELens folder for an SAE: cfg.json text and sae_weights.safetensors bytes, as SAE.save_model writes them. */
export function writeSaeLens(cfg: SaeConfig, w: SaeWeights, opts: SaeLensWriteOptions = {}): { cfgJson: string; safetensors: Uint8Array } {
	const { extra = {}, metadata = {} } = opts;
	let weights = w;
	let norm = cfg.normalizeActivations;
	if (norm === 'expected_average_only_in' && cfg.normScale !== undefined) {
		// As SAELens does before saving a trained SAE (sae_trainer.py): fold the scale, normalize "none".
		weights = { ...w, wEnc: w.wEnc.slice(), wDec: w.wDec.slice(), bDec: w.bDec.slice(), wSkip: w.wSkip?.slice() };
		foldActivationScale(weights, cfg.normScale, cfg.normScaleOut ?? cfg.normScale);
		norm = 'none';
	}
	const tc = isTranscoder(cfg);
	const architecture = tc
		? `${cfg.architecture === 'relu' ? '' : `${cfg.architecture}_`}${cfg.skip ? 'skip_' : ''}transcoder`
		: cfg.architecture === 'relu'
			? 'standard'
			: cfg.architecture;
	const json: Json = {
		d_in: cfg.dIn,
		d_sae: cfg.dSae,
		dtype: 'float32',
		device: 'cpu',
		...(tc ? { d_out: cfg.dOut } : {}),
		apply_b_dec_to_input: tc ? false : cfg.applyBDecToInput,
		normalize_activations: norm,
		reshape_activations: 'none',
		metadata: {
			sae_lens_version: SAELENS_FORMAT_VERSION,
			sae_lens_training_version: null,
			model_name: cfg.modelName ?? null,
			hook_name: cfg.hookName,
			hook_head_index: null,
			context_size: cfg.contextSize ?? null,
			prepend_bos: cfg.prependBos ?? true,
			model_from_pretrained_kwargs: { center_writing_weights: cfg.centerInput },
			neuronpedia_id: cfg.neuronpediaId ?? null,
			...(tc ? { hook_name_out: cfg.hookNameOut, hook_head_index_out: null } : {}),
			...metadata
		},
		// TopKSAEConfig's own fields. Loupe's weights are the folded ones, so no rescaling.
		...(cfg.architecture === 'topk' ? { k: cfg.k, rescale_acts_by_decoder_norm: false } : {}),
		architecture,
		...extra
	};
	const tensors: Record<string, { shape: number[]; data: Float32Array }> = {
		W_enc: { shape: [cfg.dIn, cfg.dSae], data: weights.wEnc },
		W_dec: { shape: [cfg.dSae, tc ? cfg.dOut : cfg.dIn], data: weights.wDec },
		b_enc: { shape: [cfg.dSae], data: weights.bEnc },
		b_dec: { shape: [tc ? cfg.dOut : cfg.dIn], data: weights.bDec }
	};
	if (tc && cfg.skip && weights.wSkip) tensors.W_skip = { shape: [cfg.dOut, cfg.dIn], data: weights.wSkip };
	if (weights.threshold) tensors.threshold = { shape: [cfg.dSae], data: weights.threshold };
	return { cfgJson: JSON.stringify(json, null, 2), safetensors: writeSafetensors(tensors) };
}

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
 * Writes what SAELens 6's SAE.save_model writes (SAEConfig.to_dict: the dataclass fields, `metadata`
 * with sae_lens_version, `architecture`), so an SAE made here loads in SAELens with its hook.
 */
import { LoupeError } from '../../errors';
import type { SaeConfig, SaeWeights } from '../config';
import { readSafetensors, writeSafetensors } from './safetensors';
import { takeWeights } from './weights';
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

/** SAE.fold_activation_norm_scaling_factor: W_enc·s, W_dec/s, b_dec/s (thresholds act on pre and stay). */
export function foldActivationScale(w: SaeWeights, s: number): void {
	for (let i = 0; i < w.wEnc.length; i++) w.wEnc[i] *= s;
	for (let i = 0; i < w.wDec.length; i++) w.wDec[i] /= s;
	for (let i = 0; i < w.bDec.length; i++) w.bDec[i] /= s;
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
		weights = { ...w, wEnc: w.wEnc.slice(), wDec: w.wDec.slice(), bDec: w.bDec.slice() };
		foldActivationScale(weights, cfg.normScale);
		norm = 'none';
	}
	const json: Json = {
		d_in: cfg.dIn,
		d_sae: cfg.dSae,
		dtype: 'float32',
		device: 'cpu',
		apply_b_dec_to_input: cfg.applyBDecToInput,
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
			...metadata
		},
		// TopKSAEConfig's own fields. Loupe's weights are the folded ones, so no rescaling.
		...(cfg.architecture === 'topk' ? { k: cfg.k, rescale_acts_by_decoder_norm: false } : {}),
		architecture: cfg.architecture === 'relu' ? 'standard' : cfg.architecture,
		...extra
	};
	const tensors: Record<string, { shape: number[]; data: Float32Array }> = {
		W_enc: { shape: [cfg.dIn, cfg.dSae], data: weights.wEnc },
		W_dec: { shape: [cfg.dSae, cfg.dIn], data: weights.wDec },
		b_enc: { shape: [cfg.dSae], data: weights.bEnc },
		b_dec: { shape: [cfg.dIn], data: weights.bDec }
	};
	if (weights.threshold) tensors.threshold = { shape: [cfg.dSae], data: weights.threshold };
	return { cfgJson: JSON.stringify(json, null, 2), safetensors: writeSafetensors(tensors) };
}

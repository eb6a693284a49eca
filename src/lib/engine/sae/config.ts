/**
 * An SAE's configuration: a plain object, whatever format it came from (formats/ map theirs onto it).
 * Names follow SAELens where SAELens has one.
 */
export type SaeArchitecture = 'relu' | 'jumprelu' | 'topk';

/**
 * How the residual is normalised before encoding (and restored after decoding):
 * - none
 * - layer_norm: per token, x' = (x − mean) / (std + 1e-5) with the unbiased std (n − 1), undone as
 *   x̂·std + mean (SAELens run_time_activation_ln_in / _ln_out, sae_lens/saes/sae.py)
 * - constant_norm_rescale: per token, scale to norm sqrt(d_in) (SAELens "constant_norm_rescale")
 * - expected_average_only_in: multiply by a constant `normScale` fitted on data (SAELens). SAELens's
 *   SAE applies nothing at inference for it (its run_time_activation_norm_fn_in is the identity,
 *   sae_lens/saes/sae.py _setup_activation_normalization); SAE.from_pretrained folds a release's
 *   `norm_scaling_factor` into the weights instead, and so does Loupe (sae/saelens-registry.ts), so
 *   `normScale` is unset for SAELens files and the input goes in as it is.
 */
export type SaeNormalization = 'none' | 'layer_norm' | 'constant_norm_rescale' | 'expected_average_only_in';

export interface SaeConfig {
	architecture: SaeArchitecture;
	dIn: number;
	dSae: number;
	hookName: string; // TransformerLens name: blocks.L.hook_resid_pre/post, hook_attn_out, hook_mlp_in, hook_mlp_out
	/**
	 * Transcoders only (sae/transcoder.ts): the hook they write, d_out wide, e.g. blocks.L.hook_mlp_out
	 * for one that reads blocks.L.hook_mlp_in. Absent: an SAE, which writes back where it reads.
	 */
	hookNameOut?: string;
	dOut?: number; // transcoders: the width of what they write (d_in for an SAE)
	/** Transcoders: out += x · W_skipᵀ (SAELens's skip_transcoder, Gemma Scope 2's affine transcoders). */
	skip?: boolean;
	k?: number; // TopK: active features per token
	applyBDecToInput: boolean; // encode (x - b_dec) rather than x
	normalizeActivations: SaeNormalization;
	normScale?: number; // for expected_average_only_in
	normScaleOut?: number; // transcoders trained in Loupe: the target's scale (the input's is normScale)
	/**
	 * Subtract each token's mean over d_model before encoding. Needed where the SAE was trained on a
	 * residual with centred writing weights (TransformerLens's default for LayerNorm models such as
	 * GPT-2) but the model here is a stock export.
	 */
	centerInput: boolean;
	modelName?: string;
	/** Neuronpedia's id of this SAE ("gpt2-small/8-res-jb"), from the cfg's metadata or the release registry. */
	neuronpediaId?: string;
	/** SAELens metadata kept for the card and for writing the SAE back out. */
	contextSize?: number;
	prependBos?: boolean;
	/** What Loupe did on loading so the file runs as SAELens runs it (folded decoder norms, …), in words. */
	conversions?: string[];
	/** Where it came from, for the SAE's card: "SAELens", "Gemma Scope (npz)", … */
	format: string;
	dtype: string; // of the file; weights are always widened to float32 here
	name: string;
}

export interface SaeWeights {
	wEnc: Float32Array; // [dIn, dSae]
	wDec: Float32Array; // [dSae, dOut] (dOut = dIn for an SAE)
	bEnc: Float32Array; // [dSae]
	bDec: Float32Array; // [dOut]
	threshold?: Float32Array; // [dSae], JumpReLU
	/** Transcoders with a skip connection: [dOut, dIn], SAELens's W_skip (out += x · W_skipᵀ). */
	wSkip?: Float32Array;
}

/** A transcoder reads one hook and writes another (hookNameOut); an SAE writes back where it reads. */
export const isTranscoder = (c: SaeConfig): c is SaeConfig & { hookNameOut: string; dOut: number } => c.hookNameOut !== undefined;

/** The width of what the SAE or transcoder writes. */
export const dOutOf = (c: SaeConfig) => c.dOut ?? c.dIn;

/** What preprocessing an SAE applies, in words for its card. */
export function describePreprocessing(c: SaeConfig): string[] {
	const out: string[] = [];
	if (isTranscoder(c))
		out.push(
			`a transcoder: reads ${c.hookName} (d_in ${c.dIn}) and predicts ${c.hookNameOut} (d_out ${c.dOut})${c.skip ? ', plus a linear skip connection x · W_skipᵀ' : ''}`
		);
	if (c.centerInput) out.push('mean-centres each token over d_model (trained with centred writing weights)');
	if (c.normalizeActivations === 'layer_norm') out.push('layer-normalises each token (undone after decoding)');
	if (c.normalizeActivations === 'constant_norm_rescale') out.push(`rescales each token to norm √${c.dIn} (undone after decoding)`);
	if (c.normalizeActivations === 'expected_average_only_in')
		out.push(
			c.normScale === undefined
				? 'expected_average_only_in without a scaling factor: as in SAELens, the input goes in unscaled'
				: `scales the input by ${c.normScale}`
		);
	if (c.applyBDecToInput) out.push('subtracts b_dec before encoding');
	const conversions = c.conversions ?? [];
	return out.length ? [...out, ...conversions] : ['none: encodes the residual as it is', ...conversions];
}

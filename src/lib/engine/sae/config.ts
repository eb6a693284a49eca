/**
 * An SAE's configuration: a plain object, whatever format it came from (formats/ map theirs onto it).
 * Names follow SAELens where SAELens has one.
 */
export type SaeArchitecture = 'relu' | 'jumprelu' | 'topk';

/**
 * How the residual is normalised before encoding (and restored after decoding):
 * - none
 * - layer_norm: per token, subtract the mean and divide by the standard deviation (SAELens "layer_norm")
 * - constant_norm_rescale: per token, scale to norm sqrt(d_in) (SAELens "constant_norm_rescale")
 * - expected_average_only_in: multiply by a constant `normScale` fitted on data (SAELens)
 */
export type SaeNormalization = 'none' | 'layer_norm' | 'constant_norm_rescale' | 'expected_average_only_in';

export interface SaeConfig {
	architecture: SaeArchitecture;
	dIn: number;
	dSae: number;
	hookName: string; // blocks.L.hook_resid_pre / hook_resid_post
	k?: number; // TopK: active features per token
	applyBDecToInput: boolean; // encode (x - b_dec) rather than x
	normalizeActivations: SaeNormalization;
	normScale?: number; // for expected_average_only_in
	/**
	 * Subtract each token's mean over d_model before encoding. Needed where the SAE was trained on a
	 * residual with centred writing weights (TransformerLens's default for LayerNorm models such as
	 * GPT-2) but the model here is a stock export.
	 */
	centerInput: boolean;
	modelName?: string;
	/** Where it came from, for the SAE's card: "SAELens", "Gemma Scope (npz)", … */
	format: string;
	dtype: string; // of the file; weights are always widened to float32 here
	name: string;
}

export interface SaeWeights {
	wEnc: Float32Array; // [dIn, dSae]
	wDec: Float32Array; // [dSae, dIn]
	bEnc: Float32Array; // [dSae]
	bDec: Float32Array; // [dIn]
	threshold?: Float32Array; // [dSae], JumpReLU
}

/** What preprocessing an SAE applies, in words for its card. */
export function describePreprocessing(c: SaeConfig): string[] {
	const out: string[] = [];
	if (c.centerInput) out.push('mean-centres each token over d_model (trained with centred writing weights)');
	if (c.normalizeActivations === 'layer_norm') out.push('layer-normalises each token (undone after decoding)');
	if (c.normalizeActivations === 'constant_norm_rescale') out.push(`rescales each token to norm √${c.dIn} (undone after decoding)`);
	if (c.normalizeActivations === 'expected_average_only_in') out.push(`scales the input by ${c.normScale ?? 1}`);
	if (c.applyBDecToInput) out.push('subtracts b_dec before encoding');
	return out.length ? out : ['none: encodes the residual as it is'];
}

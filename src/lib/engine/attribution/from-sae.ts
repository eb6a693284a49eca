/**
 * The attribution's transcoder from what the SAE loaders and the trainer produce (`sae/config.ts`
 * SaeConfig + SaeWeights: SAELens and Gemma Scope 2 transcoders, Loupe's trained ones), for the MLP
 * of one layer: it must read `blocks.L.hook_mlp_in` and write `blocks.L.hook_mlp_out`.
 *
 * A constant input scale s and output scale s_out (trained in Loupe: act = σ((x·s)·W_enc + b_enc),
 * out = (act·W_dec + b_dec + (x·s)·W_skipᵀ) / s_out) fold into the weights — W_enc·s, W_dec/s_out,
 * b_dec/s_out, W_skip·s/s_out — so the transcoder stays linear-affine in its input as the
 * attribution needs. Preprocessing that is not a constant scale is refused.
 */
import { LoupeError } from '../errors';
import type { SaeConfig, SaeWeights } from '../sae/config';
import type { Transcoder } from './transcoder';

export function transcoderFromSae(cfg: SaeConfig, w: SaeWeights): Transcoder {
	const refuse = (what: string, action = 'Use a transcoder trained from blocks.L.hook_mlp_in to blocks.L.hook_mlp_out.') => {
		throw new LoupeError('sae-mismatch', `${cfg.name} cannot replace an MLP in an attribution graph: ${what}.`, action);
	};
	const inHook = /^blocks\.(\d+)\.hook_mlp_in$/.exec(cfg.hookName);
	const outHook = /^blocks\.(\d+)\.hook_mlp_out$/.exec(cfg.hookNameOut ?? '');
	if (!cfg.hookNameOut) refuse(`it is an SAE (it writes back to ${cfg.hookName}), not a transcoder`);
	if (!inHook || !outHook || inHook[1] !== outHook[1])
		refuse(`it maps ${cfg.hookName} to ${cfg.hookNameOut}, not one layer's hook_mlp_in to its hook_mlp_out`);
	if (cfg.applyBDecToInput) refuse('it subtracts b_dec from its input, which a transcoder (b_dec is on the output side) should not');
	if (cfg.centerInput) refuse('it centres its input per token (a nonlinear step the frozen model cannot carry)');
	if (cfg.normalizeActivations === 'layer_norm' || cfg.normalizeActivations === 'constant_norm_rescale')
		refuse(`it normalises its input per token (${cfg.normalizeActivations})`);
	const dOut = cfg.dOut ?? cfg.dIn;
	const s = cfg.normalizeActivations === 'expected_average_only_in' ? (cfg.normScale ?? 1) : 1;
	const sOut = cfg.normScaleOut ?? 1;
	const scaled = (a: Float32Array, by: number) => (by === 1 ? a : Float32Array.from(a, (v) => v * by));
	return {
		layer: Number(inHook![1]),
		dIn: cfg.dIn,
		dSae: cfg.dSae,
		dOut,
		wEnc: scaled(w.wEnc, s),
		bEnc: w.bEnc,
		wDec: scaled(w.wDec, 1 / sOut),
		bDec: scaled(w.bDec, 1 / sOut),
		threshold: cfg.architecture === 'jumprelu' ? w.threshold : undefined,
		k: cfg.architecture === 'topk' ? (cfg.k ?? 100) : undefined,
		wSkip: w.wSkip ? scaled(w.wSkip, s / sOut) : undefined,
		name: cfg.name
	};
}

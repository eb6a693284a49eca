/**
 * Finds the format of a set of SAE files by their names and reads them:
 *   cfg.json + *.safetensors         → SAELens (+ sparsity.safetensors, activation_scaler.json when there)
 *   params.npz                       → Gemma Scope
 *   params.safetensors (+config.json) → Gemma Scope 2
 * and refuses, saying why, an SAE at a hook Loupe cannot attach to. Transcoders come through the same
 * readers (cfg.hookNameOut set; sae/transcoder.ts): both of their hooks must be ones Loupe cuts at.
 */
import { LoupeError } from '../errors';
import type { SaeConfig, SaeWeights } from './config';
import { readSaeLens } from './formats/saelens';
import { readGemmaScope2, readGemmaScopeNpz } from './formats/gemma-scope';
import { readSparsity } from './formats/sparsity';
import { assertSupportedSaeHook, isSupportedSaeHook } from './hook-support';

export interface SaeFile {
	name: string; // file name, or a path inside a release (its layer may be in it)
	buffer: ArrayBuffer;
}

export interface ReadSaeOptions {
	hookName?: string; // overrides what the files say
	modelName?: string;
	repo?: string; // the hub repository the files came from (Gemma Scope names the site there)
	overrides?: Record<string, unknown>; // a release's config_overrides (SAELens files)
	normScalingFactor?: number; // a release's norm_scaling_factor (SAELens files)
}

export interface ReadSae {
	cfg: SaeConfig;
	weights: SaeWeights;
	/** log10 firing rate per latent from sparsity.safetensors, when the folder has one. */
	logSparsity?: Float32Array;
}

const base = (n: string) => n.split('/').pop()!;

export function readSaeFiles(files: SaeFile[], opts: ReadSaeOptions = {}): ReadSae {
	const find = (pred: (n: string) => boolean) => files.find((f) => pred(base(f.name)));
	const text = (f: SaeFile | undefined) => (f ? new TextDecoder().decode(f.buffer) : null);
	const cfg = find((n) => n === 'cfg.json');
	const npz = find((n) => n.endsWith('.npz'));
	const params = find((n) => n === 'params.safetensors');
	const weights = find((n) => n.endsWith('.safetensors') && n !== 'sparsity.safetensors');
	const sparsity = find((n) => n === 'sparsity.safetensors');
	const scaler = find((n) => n === 'activation_scaler.json');
	let out: ReadSae;
	if (cfg && weights) {
		out = readSaeLens(
			text(cfg)!,
			weights.buffer,
			{ cfg: cfg.name, weights: weights.name },
			{ overrides: opts.overrides, normScalingFactor: opts.normScalingFactor, scalingFactor: scalingFactorOf(text(scaler), scaler?.name) }
		);
		if (sparsity) out.logSparsity = readSparsity(sparsity.buffer, out.cfg.dSae, sparsity.name);
	} else if (npz) out = readGemmaScopeNpz(npz.buffer, { path: npz.name, ...opts });
	else if (params) out = readGemmaScope2(text(find((n) => n === 'config.json')), params.buffer, { path: params.name, ...opts });
	else
		throw new LoupeError(
			'not-an-sae',
			`These files are not an SAE Loupe can read (${files.map((f) => base(f.name)).join(', ') || 'no files'}).`,
			'Choose an SAELens folder (cfg.json + sae_weights.safetensors), a Gemma Scope params.npz, or a Gemma Scope 2 params.safetensors with its config.json.'
		);
	if (opts.hookName) out.cfg.hookName = opts.hookName;
	assertSupportedSaeHook(out.cfg.hookName);
	if (out.cfg.hookNameOut !== undefined && !isSupportedSaeHook(out.cfg.hookNameOut))
		throw new LoupeError(
			'sae-mismatch',
			`This transcoder writes "${out.cfg.hookNameOut}"; Loupe cannot hook there yet.`,
			'Loupe runs transcoders that write blocks.L.hook_mlp_out (or another of hook_resid_pre/post, hook_attn_out, hook_mlp_in): pick one of those.'
		);
	return out;
}

/**
 * An SAELens training checkpoint's activation_scaler.json ({"scaling_factor": s | null}): the SAE
 * saw activations × s, which SAELens folds into the weights only when training ends
 * (sae_trainer.py fold_activation_norm_scaling_factor); a checkpoint still has it apart.
 */
function scalingFactorOf(json: string | null, name = 'activation_scaler.json'): number | undefined {
	if (json === null) return undefined;
	let s: unknown;
	try {
		s = JSON.parse(json).scaling_factor;
	} catch {
		throw new LoupeError('not-an-sae', `${name} is not valid JSON.`, 'Remove it, or choose the one that came with this checkpoint.');
	}
	if (s === null || s === undefined) return undefined;
	if (typeof s !== 'number' || !(s > 0))
		throw new LoupeError(
			'not-an-sae',
			`${name} has scaling_factor ${JSON.stringify(s)}; it must be a positive number or null.`,
			'Remove it, or choose the one that came with this checkpoint.'
		);
	return s;
}

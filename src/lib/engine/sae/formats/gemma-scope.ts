/**
 * Gemma Scope (`params.npz`: W_enc, W_dec, b_enc, b_dec, threshold; JumpReLU, no b_dec on input) and
 * Gemma Scope 2 (`params.safetensors` with lowercase w_enc, w_dec, b_enc, b_dec, threshold, plus a
 * `config.json`). Neither file names its hook reliably, so the hook comes from the release path
 * (`layer_12/…`, `resid_post…/layer_12_…`) or from the caller.
 */
import { LoupeError } from '../../errors';
import type { SaeConfig, SaeWeights } from '../config';
import { readNpz } from './npz';
import { readSafetensors } from './safetensors';
import { takeWeights } from './weights';
import type { NamedTensor } from './tensors';

/** `layer_12/width_16k/…` or `resid_post/layer_12_width_16k_l0_big/…` → blocks.12.hook_resid_post. */
export function hookFromGemmaScopePath(path: string): string | undefined {
	const layer = /layer_(\d+)/.exec(path)?.[1];
	return layer === undefined ? undefined : `blocks.${layer}.hook_resid_post`;
}

function jumpReluConfig(tensors: Map<string, NamedTensor>, encKey: string, hookName: string | undefined, file: string, format: string, modelName?: string): SaeConfig {
	const enc = tensors.get(encKey);
	if (!enc || enc.shape.length !== 2) throw new LoupeError('not-an-sae', `${file} has no 2-D "${encKey}" tensor, so it is not a ${format} SAE.`, `Choose a ${format} params file.`);
	if (!hookName)
		throw new LoupeError('not-an-sae', `${file} does not say which layer it reads.`, 'Pick the hook point it was trained on (e.g. blocks.12.hook_resid_post) before loading.');
	return {
		architecture: 'jumprelu',
		dIn: enc.shape[0],
		dSae: enc.shape[1],
		hookName,
		applyBDecToInput: false,
		normalizeActivations: 'none',
		centerInput: false,
		modelName,
		format,
		dtype: enc.dtype,
		name: `${modelName ?? format} ${hookName} ${enc.shape[1]}`
	};
}

export function readGemmaScopeNpz(buf: ArrayBuffer, opts: { hookName?: string; path?: string; modelName?: string } = {}): { cfg: SaeConfig; weights: SaeWeights } {
	const file = opts.path ?? 'params.npz';
	const tensors = readNpz(buf, file);
	const cfg = jumpReluConfig(tensors, 'W_enc', opts.hookName ?? hookFromGemmaScopePath(opts.path ?? ''), file, 'Gemma Scope', opts.modelName);
	return { cfg, weights: takeWeights(tensors, cfg, file, { wEnc: 'W_enc', wDec: 'W_dec', bEnc: 'b_enc', bDec: 'b_dec', threshold: 'threshold' }) };
}

/** Gemma Scope 2's config.json names the hook in one of several keys; HF module paths are mapped too. */
function hookFromGemmaScope2Config(config: Record<string, unknown>): string | undefined {
	for (const key of ['hook_name', 'hook_point', 'hook_point_in', 'hf_hook_point_in', 'hf_hook_name']) {
		const v = config[key];
		if (typeof v !== 'string') continue;
		if (/^blocks\.\d+\.hook_resid_(pre|post)$/.test(v)) return v;
		const layer = /layers?\.(\d+)/.exec(v)?.[1];
		if (layer !== undefined) return `blocks.${layer}.hook_resid_post`;
	}
	return undefined;
}

export function readGemmaScope2(configText: string | null, buf: ArrayBuffer, opts: { hookName?: string; path?: string; modelName?: string } = {}): { cfg: SaeConfig; weights: SaeWeights } {
	const file = opts.path ?? 'params.safetensors';
	let config: Record<string, unknown> = {};
	if (configText) {
		try {
			config = JSON.parse(configText);
		} catch {
			throw new LoupeError('not-an-sae', 'config.json of this Gemma Scope 2 SAE is not valid JSON.', 'Download it again.');
		}
	}
	const tensors = readSafetensors(buf, file);
	const hook = opts.hookName ?? hookFromGemmaScope2Config(config) ?? hookFromGemmaScopePath(opts.path ?? '');
	const modelName = opts.modelName ?? (typeof config.model_name === 'string' ? config.model_name : undefined);
	const cfg = jumpReluConfig(tensors, 'w_enc', hook, file, 'Gemma Scope 2', modelName);
	return { cfg, weights: takeWeights(tensors, cfg, file, { wEnc: 'w_enc', wDec: 'w_dec', bEnc: 'b_enc', bDec: 'b_dec', threshold: 'threshold' }) };
}

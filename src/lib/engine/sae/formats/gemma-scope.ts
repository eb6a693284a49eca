/**
 * Gemma Scope (`params.npz`: W_enc, W_dec, b_enc, b_dec, threshold; JumpReLU, no b_dec on input) and
 * Gemma Scope 2 (`params.safetensors` with lowercase w_enc, w_dec, b_enc, b_dec, threshold, plus a
 * `config.json`). Neither weights file names its hook, so it comes, as in SAELens, from where the
 * file lives (pretrained_sae_loaders.py):
 *  - Gemma Scope (get_gemma_2_config_from_hf), by repository: …-res → blocks.L.hook_resid_post
 *    (embedding/ → hook_embed), …-mlp → blocks.L.hook_mlp_out, …-att → blocks.L.attn.hook_z;
 *  - Gemma Scope 2 (get_gemma_3_config_from_hf, hook names as fixed in SAELens PR #624), by folder:
 *    resid_post… → hook_resid_post, attn_out… → attn.hook_z (the o_proj input, not the attention
 *    output), mlp_out… → hook_mlp_out, transcoder… → hook_mlp_in → hook_mlp_out (a transcoder);
 *  - failing those, Gemma Scope 2's config.json hf_hook_point_in (model.layers.L.output,
 *    .post_feedforward_layernorm.output, .self_attn.o_proj.input), or the caller.
 */
import { LoupeError } from '../../errors';
import type { SaeConfig, SaeWeights } from '../config';
import { readNpz } from './npz';
import { readSafetensors } from './safetensors';
import { takeWeights } from './weights';
import type { NamedTensor } from './tensors';

export interface GemmaScopeOptions {
	hookName?: string;
	path?: string; // the file's path inside its release (its folders name the site and layer)
	repo?: string; // google/gemma-scope-2b-pt-mlp, …: Gemma Scope names the site in the repository
	modelName?: string;
}

const layerOf = (s: string) => /layer_(\d+)/.exec(s)?.[1];

/** The SAELens hook of a Gemma Scope or Gemma Scope 2 file from its repository and path, if they say. */
export function hookFromGemmaScopePath(path: string, repo = ''): string | undefined {
	const layer = layerOf(path);
	// Gemma Scope 2: the site is the release folder (get_gemma_3_config_from_hf's order).
	if (layer !== undefined) {
		if (/(^|\/)resid_post/.test(path)) return `blocks.${layer}.hook_resid_post`;
		if (/(^|\/)attn_out/.test(path)) return `blocks.${layer}.attn.hook_z`;
		if (/(^|\/)mlp_out/.test(path)) return `blocks.${layer}.hook_mlp_out`;
		if (/(^|\/)(transcoder|clt)/.test(path)) return `blocks.${layer}.hook_mlp_in`;
	}
	// Gemma Scope: the site is in the repository name (get_gemma_2_config_from_hf tests "res" first).
	const repoName = repo.split('/').pop() ?? '';
	const site = repo
		? (['res', 'mlp', 'att'] as const).find((s) => repoName.includes(s))
		: /gemma-scope-[^/]*?-(res|mlp|att)\b/.exec(path)?.[1];
	if (site === 'res' && /(^|\/)embedding/.test(path)) return 'hook_embed';
	if (layer === undefined) return undefined;
	if (site === 'mlp') return `blocks.${layer}.hook_mlp_out`;
	if (site === 'att') return `blocks.${layer}.attn.hook_z`;
	return `blocks.${layer}.hook_resid_post`; // …-res, or a bare layer_L/ path: the residual stream
}

function jumpReluConfig(
	tensors: Map<string, NamedTensor>,
	encKey: string,
	hookName: string | undefined,
	file: string,
	format: string,
	modelName?: string
): SaeConfig {
	const enc = tensors.get(encKey);
	if (!enc || enc.shape.length !== 2)
		throw new LoupeError(
			'not-an-sae',
			`${file} has no 2-D "${encKey}" tensor, so it is not a ${format} SAE.`,
			`Choose a ${format} params file.`
		);
	if (!hookName)
		throw new LoupeError(
			'not-an-sae',
			`${file} does not say which layer it reads.`,
			'Pick the hook point it was trained on (e.g. blocks.12.hook_resid_post) before loading.'
		);
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

export function readGemmaScopeNpz(buf: ArrayBuffer, opts: GemmaScopeOptions = {}): { cfg: SaeConfig; weights: SaeWeights } {
	const file = opts.path ?? 'params.npz';
	const tensors = readNpz(buf, file);
	const cfg = jumpReluConfig(
		tensors,
		'W_enc',
		opts.hookName ?? hookFromGemmaScopePath(opts.path ?? '', opts.repo),
		file,
		'Gemma Scope',
		opts.modelName
	);
	return {
		cfg,
		weights: takeWeights(tensors, cfg, file, { wEnc: 'W_enc', wDec: 'W_dec', bEnc: 'b_enc', bDec: 'b_dec', threshold: 'threshold' })
	};
}

/** Gemma Scope 2's config.json: HF module paths (hf_hook_point_in) as SAELens names them; older keys too. */
function hookFromGemmaScope2Config(config: Record<string, unknown>): string | undefined {
	for (const key of ['hook_name', 'hook_point', 'hook_point_in', 'hf_hook_point_in', 'hf_hook_name']) {
		const v = config[key];
		if (typeof v !== 'string') continue;
		if (/^blocks\.\d+\./.test(v)) return v;
		const layer = /layers?\.(\d+)/.exec(v)?.[1];
		if (layer === undefined) continue;
		if (/self_attn\.o_proj\.input$/.test(v)) return `blocks.${layer}.attn.hook_z`;
		if (/post_feedforward_layernorm\.output$/.test(v)) return `blocks.${layer}.hook_mlp_out`;
		if (/pre_feedforward_layernorm\.output$/.test(v)) return `blocks.${layer}.hook_mlp_in`;
		if (/layers\.\d+(\.output)?$/.test(v)) return `blocks.${layer}.hook_resid_post`;
		return undefined; // a module Loupe has no name for: the caller must say
	}
	return undefined;
}

export function readGemmaScope2(
	configText: string | null,
	buf: ArrayBuffer,
	opts: GemmaScopeOptions = {}
): { cfg: SaeConfig; weights: SaeWeights } {
	const file = opts.path ?? 'params.safetensors';
	let config: Record<string, unknown> = {};
	if (configText) {
		let parsed: unknown;
		try {
			parsed = JSON.parse(configText);
		} catch {
			throw new LoupeError('not-an-sae', 'config.json of this Gemma Scope 2 SAE is not valid JSON.', 'Download it again.');
		}
		if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed))
			throw new LoupeError(
				'not-an-sae',
				'config.json of this Gemma Scope 2 SAE is not a JSON object (it should hold width, architecture, hf_hook_point_in, …).',
				'Download it again, or choose the config.json of the same folder.'
			);
		config = parsed as Record<string, unknown>;
	}
	if (config.type === 'transcoder' || config.affine_connection === true)
		throw new LoupeError(
			'not-an-sae',
			`${file} is a Gemma Scope 2 transcoder (it reads the MLP input and predicts the MLP output); Loupe runs SAEs only.`,
			'Choose an SAE folder (resid_post, mlp_out) of the release.'
		);
	const tensors = readSafetensors(buf, file);
	const path = opts.path ?? '';
	const hook =
		opts.hookName ??
		(layerOf(path) !== undefined && /(resid_post|attn_out|mlp_out|transcoder)/.test(path)
			? hookFromGemmaScopePath(path, opts.repo)
			: undefined) ??
		hookFromGemmaScope2Config(config) ??
		hookFromGemmaScopePath(path, opts.repo);
	const modelName = opts.modelName ?? (typeof config.model_name === 'string' ? config.model_name : undefined);
	const cfg = jumpReluConfig(tensors, 'w_enc', hook, file, 'Gemma Scope 2', modelName);
	return {
		cfg,
		weights: takeWeights(tensors, cfg, file, { wEnc: 'w_enc', wDec: 'w_dec', bEnc: 'b_enc', bDec: 'b_dec', threshold: 'threshold' })
	};
}

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
 * Gemma Scope 2 transcoders (config.json type "transcoder", folders transcoder/ and transcoder_all/)
 * read the pre_feedforward_layernorm output (Loupe's blocks.L.hook_mlp_in) and write the
 * post_feedforward_layernorm output (blocks.L.hook_mlp_out, hf_hook_point_out): w_dec is
 * [d_sae, d_out], and the affine ones (affine_connection) add x · affine_skip_connection, a
 * [d_in, d_out] matrix, kept as W_skip = its transpose (sae/transcoder.ts). Cross-layer
 * transcoders (clt/) are refused.
 */
import { LoupeError } from '../../errors';
import type { SaeConfig, SaeWeights } from '../config';
import { readNpz } from './npz';
import { readSafetensors } from './safetensors';
import { takeMatrix, takeWeights } from './weights';
import { checkTranscoderConfig } from '../transcoder';
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
	const transcoder =
		config.type === 'transcoder' ||
		config.affine_connection === true ||
		tensors.has('affine_skip_connection') ||
		(!configText && /(^|\/)transcoder/.test(path));
	if (/(^|\/)clt/.test(path) || config.type === 'clt' || (tensors.get('w_dec')?.shape.length ?? 2) > 2)
		throw new LoupeError(
			'not-an-sae',
			`${file} is a Gemma Scope 2 cross-layer transcoder (its decoder writes to every later layer); Loupe runs single-layer transcoders.`,
			'Choose a transcoder/ or transcoder_all/ folder of the release.'
		);
	const cfg = jumpReluConfig(tensors, 'w_enc', hook, file, 'Gemma Scope 2', modelName);
	if (!transcoder)
		return {
			cfg,
			weights: takeWeights(tensors, cfg, file, { wEnc: 'w_enc', wDec: 'w_dec', bEnc: 'b_enc', bDec: 'b_dec', threshold: 'threshold' })
		};
	const dec = tensors.get('w_dec');
	if (!dec || dec.shape.length !== 2)
		throw new LoupeError(
			'not-an-sae',
			`${file} has no 2-D "w_dec" tensor, so it is not a Gemma Scope 2 transcoder.`,
			'Choose its params.safetensors.'
		);
	const layer = /^blocks\.(\d+)\./.exec(cfg.hookName)?.[1];
	const hookOut =
		hookFromGemmaScope2Config({ hf_hook_point_in: config.hf_hook_point_out }) ??
		(layer !== undefined ? `blocks.${layer}.hook_mlp_out` : undefined);
	if (!hookOut)
		throw new LoupeError(
			'not-an-sae',
			`${file} is a transcoder, but neither its config.json (hf_hook_point_out) nor its path says which hook it writes.`,
			'Keep its config.json beside it, or load it from its folder in the release (transcoder/layer_L_…).'
		);
	const tc: SaeConfig = {
		...cfg,
		hookNameOut: hookOut,
		dOut: dec.shape[1],
		name: `${modelName ?? 'Gemma Scope 2'} transcoder ${cfg.hookName} → ${hookOut} ${cfg.dSae}`
	};
	checkTranscoderConfig(tc, file);
	const weights = takeWeights(tensors, tc, file, { wEnc: 'w_enc', wDec: 'w_dec', bEnc: 'b_enc', bDec: 'b_dec', threshold: 'threshold' });
	// affine_skip_connection [d_in, d_out] (out += x · A): W_skip [d_out, d_in] is its transpose.
	const wSkip = takeMatrix(
		tensors,
		'affine_skip_connection',
		file,
		[tc.dOut!, tc.dIn],
		'an affine skip connection from d_in to d_out',
		true
	);
	if (config.affine_connection === true && !wSkip)
		throw new LoupeError(
			'not-an-sae',
			`${file}: config.json says affine_connection, but the file has no affine_skip_connection tensor.`,
			'Download both files of the folder again.'
		);
	if (wSkip) {
		weights.wSkip = wSkip;
		tc.skip = true;
	}
	return { cfg: tc, weights };
}

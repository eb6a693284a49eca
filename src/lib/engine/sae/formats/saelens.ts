/**
 * The SAELens folder: `cfg.json` + `sae_weights.safetensors` (W_enc [d_in,d_sae], W_dec [d_sae,d_in],
 * b_enc, b_dec, optional threshold). Reads the current cfg keys and the older ones (hook_point,
 * hook_point_layer, activation_fn_str, boolean normalize_activations) as SAELens's own
 * handle_pre_6_0_config does; writes the current ones, so an SAE made here loads in SAELens.
 */
import { LoupeError } from '../../errors';
import type { SaeArchitecture, SaeConfig, SaeNormalization, SaeWeights } from '../config';
import { readSafetensors, writeSafetensors } from './safetensors';
import { takeWeights } from './weights';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function architectureOf(cfg: Json, name: string): SaeArchitecture {
	const arch = String(cfg.architecture ?? 'standard').toLowerCase();
	const fn = String(cfg.activation_fn ?? cfg.activation_fn_str ?? 'relu').toLowerCase();
	if (arch === 'jumprelu' || arch === 'jump_relu') return 'jumprelu';
	if (arch === 'topk' || arch === 'batchtopk' || fn === 'topk') return 'topk';
	if (arch === 'standard' && fn === 'relu') return 'relu';
	throw new LoupeError(
		'not-an-sae',
		`${name} describes an SAE of architecture "${cfg.architecture ?? arch}" with activation "${fn}"; Loupe runs ReLU, JumpReLU and TopK SAEs.`,
		'Choose a ReLU (standard), JumpReLU or TopK SAE.'
	);
}

function normalizationOf(v: unknown): SaeNormalization {
	if (v === true) return 'expected_average_only_in';
	if (v === false || v === null || v === undefined || v === 'none') return 'none';
	if (v === 'layer_norm' || v === 'constant_norm_rescale' || v === 'expected_average_only_in') return v;
	throw new LoupeError('not-an-sae', `This SAE normalises its input with "${v}", which Loupe does not implement.`, 'Choose an SAE with normalize_activations none, layer_norm, constant_norm_rescale or expected_average_only_in.');
}

export function parseSaeLensConfig(cfgText: string, name = 'cfg.json'): Omit<SaeConfig, 'dtype'> & { dtype: string } {
	let cfg: Json;
	try {
		cfg = JSON.parse(cfgText);
	} catch {
		throw new LoupeError('not-an-sae', `${name} is not valid JSON.`, 'Choose the cfg.json that came with the SAE.');
	}
	const meta: Json = cfg.metadata ?? cfg.meta ?? {};
	const hookName = cfg.hook_name ?? meta.hook_name ?? cfg.hook_point;
	const dIn = Number(cfg.d_in);
	const dSae = Number(cfg.d_sae ?? (cfg.expansion_factor ? cfg.expansion_factor * cfg.d_in : NaN));
	if (typeof hookName !== 'string' || !Number.isInteger(dIn) || !Number.isInteger(dSae))
		throw new LoupeError('not-an-sae', `${name} does not say which hook the SAE reads or its sizes (hook_name, d_in, d_sae).`, 'Choose the cfg.json of an SAELens SAE.');
	const architecture = architectureOf(cfg, name);
	const modelName: string | undefined = cfg.model_name ?? meta.model_name;
	const kwargs: Json = cfg.model_from_pretrained_kwargs ?? meta.model_from_pretrained_kwargs ?? {};
	// TransformerLens centres the writing weights of LayerNorm models by default (GPT-2, Pythia), so
	// their SAEs saw a mean-zero residual; a stock export must be centred to match.
	const centerInput = typeof kwargs.center_writing_weights === 'boolean' ? kwargs.center_writing_weights : /gpt2|pythia/i.test(modelName ?? '');
	const k = Number(cfg.k ?? cfg.activation_fn_kwargs?.k);
	if (architecture === 'topk' && !(k > 0)) throw new LoupeError('not-an-sae', `${name} is a TopK SAE without k.`, 'The cfg.json needs "k" (or activation_fn_kwargs.k).');
	return {
		architecture,
		dIn,
		dSae,
		hookName,
		k: architecture === 'topk' ? k : undefined,
		applyBDecToInput: cfg.apply_b_dec_to_input ?? true,
		normalizeActivations: normalizationOf(cfg.normalize_activations),
		normScale: cfg.activation_norm_scaling_factor ?? undefined,
		centerInput,
		modelName,
		format: 'SAELens',
		dtype: String(cfg.dtype ?? 'float32'),
		name: cfg.neuronpedia_id ?? meta.neuronpedia_id ?? `${modelName ?? 'model'} ${hookName}`
	};
}

export function readSaeLens(cfgText: string, weights: ArrayBuffer, names = { cfg: 'cfg.json', weights: 'sae_weights.safetensors' }): { cfg: SaeConfig; weights: SaeWeights } {
	const cfg = parseSaeLensConfig(cfgText, names.cfg);
	const tensors = readSafetensors(weights, names.weights);
	return { cfg, weights: takeWeights(tensors, cfg, names.weights, { wEnc: 'W_enc', wDec: 'W_dec', bEnc: 'b_enc', bDec: 'b_dec', threshold: 'threshold' }) };
}

/** The SAELens folder for an SAE: cfg.json text and sae_weights.safetensors bytes. */
export function writeSaeLens(cfg: SaeConfig, w: SaeWeights, extra: Json = {}): { cfgJson: string; safetensors: Uint8Array } {
	const hookLayer = Number(/^blocks\.(\d+)\./.exec(cfg.hookName)?.[1] ?? 0);
	const json: Json = {
		architecture: cfg.architecture === 'relu' ? 'standard' : cfg.architecture,
		d_in: cfg.dIn,
		d_sae: cfg.dSae,
		dtype: 'float32',
		device: 'cpu',
		apply_b_dec_to_input: cfg.applyBDecToInput,
		normalize_activations: cfg.normalizeActivations,
		reshape_activations: 'none',
		...(cfg.architecture === 'topk' ? { k: cfg.k } : {}),
		metadata: {
			model_name: cfg.modelName ?? null,
			hook_name: cfg.hookName,
			hook_layer: hookLayer,
			hook_head_index: null,
			prepend_bos: true,
			model_from_pretrained_kwargs: { center_writing_weights: cfg.centerInput },
			sae_lens_training_version: null,
			neuronpedia_id: null
		},
		...extra
	};
	const tensors: Record<string, { shape: number[]; data: Float32Array }> = {
		W_enc: { shape: [cfg.dIn, cfg.dSae], data: w.wEnc },
		W_dec: { shape: [cfg.dSae, cfg.dIn], data: w.wDec },
		b_enc: { shape: [cfg.dSae], data: w.bEnc },
		b_dec: { shape: [cfg.dIn], data: w.bDec }
	};
	if (w.threshold) tensors.threshold = { shape: [cfg.dSae], data: w.threshold };
	return { cfgJson: JSON.stringify(json, null, 2), safetensors: writeSafetensors(tensors) };
}

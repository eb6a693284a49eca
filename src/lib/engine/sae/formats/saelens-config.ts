/**
 * SAELens's cfg.json, read as SAELens 6 reads it (sae_lens/loading/pretrained_sae_loaders.py,
 * SAE.load_from_disk → handle_config_defaulting → SAEConfig.from_dict):
 *  - a cfg without `sae_lens_version` (top level or in `metadata`), or older than 6.0.0-rc.0, is a
 *    pre-6 cfg: keys are renamed (hook_point → hook_name, activation_fn_str → activation_fn), defaults
 *    are filled in, TopK is recognised from activation_fn_kwargs.k, a boolean normalize_activations
 *    becomes "expected_average_only_in"/"none", and `metadata` is REBUILT from the top-level keys
 *    (whatever `metadata` the file had is dropped): handle_pre_6_0_config;
 *  - a current cfg keeps its `metadata`; top-level model keys are ignored (filter_valid_dataclass_fields).
 * Then the SAE class per architecture (sae_lens/__init__.py register_sae_class): standard (ReLU),
 * topk (TopKSAEConfig: k = 100 and rescale_acts_by_decoder_norm = false by default), jumprelu.
 * "batchtopk" is a training architecture only: SAELens saves BatchTopK SAEs for inference as JumpReLU
 * with threshold = topk_threshold (batchtopk_sae.py process_state_dict_for_saving_inference) and
 * SAE.load_from_disk refuses "batchtopk"; Loupe converts a checkpoint that carries topk_threshold as
 * save_inference_model would, and refuses one that does not.
 * Transcoders (sae_lens/saes/transcoder.py): transcoder (ReLU), skip_transcoder (ReLU + W_skip),
 * jumprelu_transcoder; `d_out` (TranscoderConfig's default 768 where absent) and
 * `metadata.hook_name_out`. SAELens's own transcoder loaders name the MLP input
 * blocks.L.ln2.hook_normalized (Gemma Scope) or blocks.L.mlp.hook_in (mwhanna); both are read as
 * Loupe's blocks.L.hook_mlp_in (the normalised MLP input). Loupe also writes and reads back two
 * architectures SAELens lacks, for what it trains: topk_transcoder (k) and jumprelu_skip_transcoder.
 */
import { LoupeError } from '../../errors';
import type { SaeArchitecture, SaeConfig, SaeNormalization } from '../config';
import { assertSupportedSaeHook } from '../hook-support';
import { checkTranscoderConfig } from '../transcoder';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** sae_lens/loading/pretrained_sae_loaders.py LLM_METADATA_KEYS: what a pre-6 cfg's metadata is rebuilt from. */
const LLM_METADATA_KEYS = [
	'model_name',
	'hook_name',
	'model_class_name',
	'hook_head_index',
	'model_from_pretrained_kwargs',
	'prepend_bos',
	'exclude_special_tokens',
	'neuronpedia_id',
	'context_size',
	'seqpos_slice',
	'dataset_path',
	'sae_lens_version',
	'sae_lens_training_version',
	'hook_name_out',
	'hook_head_index_out'
];

/** The SAELens release whose SAE.save_model layout Loupe writes (metadata.sae_lens_version). */
export const SAELENS_FORMAT_VERSION = '6.18.0';

/** packaging.version's order for the versions that occur: release numbers, then rc/a/b < final. */
export function versionBefore6(v: string): boolean {
	const m = /^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:[-.]?(a|b|rc|alpha|beta|dev)[-.]?(\d*))?/i.exec(v.trim());
	if (!m) return true; // SAELens's Version() would raise on it; treat as old rather than fail
	return Number(m[1]) < 6;
}

/** handle_config_defaulting: a pre-6 cfg (no version, or older than 6.0.0-rc.0) goes through handle_pre_6_0_config. */
export function handleConfigDefaulting(cfg: Json): Json {
	const version = versionOf(cfg);
	return !version || versionBefore6(version) ? handlePre60Config(cfg) : cfg;
}

/** sae_lens_version (top level or in metadata) as text; a value that is not a string or number counts as none. */
function versionOf(cfg: Json): string {
	const v = cfg.sae_lens_version || cfg.metadata?.sae_lens_version;
	return typeof v === 'string' || typeof v === 'number' ? String(v) : '';
}

/** A cfg value as it reads in a message: JSON.stringify never throws on objects whose toString is not a function. */
function show(v: unknown): string {
	const s = JSON.stringify(v) ?? String(v);
	return s.length > 80 ? s.slice(0, 77) + '...' : s;
}

/** A size from a cfg: a positive integer (or its decimal string, as some hand-written cfgs have), else NaN. */
function sizeOf(v: unknown): number {
	const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : NaN;
	return Number.isSafeInteger(n) && n > 0 && n < 2 ** 31 ? n : NaN;
}

/** handle_pre_6_0_config, key for key. */
export function handlePre60Config(cfg: Json): Json {
	const rename: Record<string, string> = {
		hook_point: 'hook_name',
		hook_point_head_index: 'hook_head_index',
		activation_fn_str: 'activation_fn'
	};
	const n: Json = {};
	for (const [k, v] of Object.entries(cfg)) n[rename[k] ?? k] = v;
	const setdefault = (k: string, v: unknown) => {
		if (!(k in n)) n[k] = v;
	};
	setdefault('prepend_bos', true);
	setdefault('apply_b_dec_to_input', true);
	setdefault('finetuning_scaling_factor', false);
	setdefault('sae_lens_training_version', null);
	setdefault('activation_fn', 'relu');
	setdefault('architecture', 'standard');
	setdefault('neuronpedia_id', null);
	setdefault('reshape_activations', typeof n.hook_name === 'string' && n.hook_name.includes('hook_z') ? 'hook_z' : 'none');
	if (n.activation_fn === 'topk' && n.activation_fn_kwargs?.k != null) {
		n.architecture = 'topk';
		n.k = n.activation_fn_kwargs.k;
	}
	if (typeof n.normalize_activations === 'boolean') n.normalize_activations = n.normalize_activations ? 'expected_average_only_in' : 'none';
	if (n.normalize_activations == null) n.normalize_activations = 'none';
	setdefault('device', 'cpu');
	const metadata: Json = {};
	for (const k of LLM_METADATA_KEYS) if (k in n) metadata[k] = n[k];
	return { ...n, metadata, architecture: n.architecture };
}

/** What the reader needs besides Loupe's config: how to turn the weights into what SAELens runs. */
export interface SaeLensReading {
	cfg: SaeConfig;
	/** TopK: pre-activations are scaled by ‖W_dec[f]‖ before TopK and activations divided by it before decoding. */
	rescaleActsByDecoderNorm: boolean;
	/** A BatchTopK training checkpoint: threshold comes from its scalar topk_threshold. */
	batchTopK: boolean;
}

const NORMS: SaeNormalization[] = ['none', 'layer_norm', 'constant_norm_rescale', 'expected_average_only_in'];

/** Transcoder architectures: the activation and whether W_skip is part of the forward. */
const TRANSCODERS: Record<string, { arch: SaeArchitecture; skip: boolean }> = {
	transcoder: { arch: 'relu', skip: false },
	skip_transcoder: { arch: 'relu', skip: true },
	jumprelu_transcoder: { arch: 'jumprelu', skip: false },
	jumprelu_skip_transcoder: { arch: 'jumprelu', skip: true }, // Loupe's: SAELens has no JumpReLU with W_skip yet
	topk_transcoder: { arch: 'topk', skip: false }, // Loupe's: SAELens has no TopK transcoder yet
	topk_skip_transcoder: { arch: 'topk', skip: true }
};

/** SAELens's names for the MLP input, read as Loupe's hook_mlp_in (the normalised MLP input). */
function transcoderInputHook(hook: string): { hook: string; note?: string } {
	const m = /^blocks\.(\d+)\.(ln2\.hook_normalized|mlp\.hook_in)$/.exec(hook);
	if (!m) return { hook };
	return {
		hook: `blocks.${m[1]}.hook_mlp_in`,
		note: `reads ${hook}, which is Loupe's blocks.${m[1]}.hook_mlp_in (the normalised MLP input)`
	};
}

function architectureOf(d: Json, name: string): { arch: SaeArchitecture; batchTopK: boolean; transcoder?: { skip: boolean } } {
	const arch = typeof d.architecture === 'string' ? d.architecture : show(d.architecture);
	if (Object.hasOwn(TRANSCODERS, arch)) {
		const t = TRANSCODERS[arch];
		return { arch: t.arch, batchTopK: false, transcoder: { skip: t.skip } };
	}
	if (arch === 'standard') {
		// StandardSAE is ReLU whatever activation_fn says; a pre-6 TopK cfg without activation_fn_kwargs.k
		// would load in SAELens as ReLU, which cannot be what its author meant.
		if (d.activation_fn && d.activation_fn !== 'relu')
			throw new LoupeError(
				'not-an-sae',
				`${name} has activation ${show(d.activation_fn)} but no activation_fn_kwargs.k, so SAELens would run it as a plain ReLU SAE.`,
				'Add "activation_fn_kwargs": {"k": …} (a TopK SAE) or choose another SAE.'
			);
		return { arch: 'relu', batchTopK: false };
	}
	if (arch === 'topk' || arch === 'jumprelu') return { arch, batchTopK: false };
	if (arch === 'batchtopk') return { arch: 'jumprelu', batchTopK: true };
	throw new LoupeError(
		'not-an-sae',
		`${name} describes an SAE of architecture ${show(d.architecture)}; Loupe runs SAELens's standard (ReLU), topk and jumprelu SAEs (and BatchTopK checkpoints, as SAELens saves them for inference: JumpReLU), and its transcoder, skip_transcoder and jumprelu_transcoder.`,
		'Choose a ReLU (standard), JumpReLU or TopK SAE, or one of those transcoders.'
	);
}

/**
 * cfg.json text → Loupe's config, by SAELens's rules. `overrides` are merged into the cfg before
 * defaulting, as get_sae_lens_config_from_disk does with a release's config_overrides.
 */
export function readSaeLensConfig(cfgText: string, name = 'cfg.json', overrides: Json = {}): SaeLensReading {
	let raw: Json;
	try {
		raw = JSON.parse(cfgText);
	} catch {
		throw new LoupeError('not-an-sae', `${name} is not valid JSON.`, 'Choose the cfg.json that came with the SAE.');
	}
	if (!raw || typeof raw !== 'object' || Array.isArray(raw))
		throw new LoupeError('not-an-sae', `${name} is not an SAELens cfg (a JSON object).`, 'Choose the cfg.json that came with the SAE.');
	const pre6 = (() => {
		const v = versionOf(raw);
		return !v || versionBefore6(v);
	})();
	const d = handleConfigDefaulting({ ...raw, ...overrides });
	// SAELens reads model keys from the (for pre-6 cfgs: rebuilt) metadata only. Where that loses what
	// the file says (a pre-6 cfg whose own `metadata` holds the hook, as Loupe wrote them before it
	// wrote sae_lens_version; a current cfg with the hook at top level), Loupe still honours the file
	// and says on the card that SAELens would attach nothing.
	const fileMeta: Json = raw.metadata && typeof raw.metadata === 'object' ? raw.metadata : {};
	const meta: Json = { ...fileMeta, ...Object.fromEntries(Object.entries(d.metadata ?? {}).filter(([, v]) => v != null)) };
	const hookName = d.metadata?.hook_name ?? fileMeta.hook_name ?? d.hook_name;
	const lost = typeof hookName === 'string' && typeof d.metadata?.hook_name !== 'string';
	const dIn = sizeOf(d.d_in);
	const dSae = sizeOf(d.d_sae ?? (typeof d.expansion_factor === 'number' ? d.expansion_factor * dIn : NaN));
	if (typeof hookName !== 'string' || !Number.isInteger(dIn) || !Number.isInteger(dSae))
		throw new LoupeError(
			'not-an-sae',
			`${name} does not say which hook the SAE reads or its sizes (metadata.hook_name, d_in, d_sae).`,
			'Choose the cfg.json of an SAELens SAE.'
		);
	const { arch, batchTopK, transcoder } = architectureOf(d, name);
	const norm = d.normalize_activations ?? 'none';
	if (!NORMS.includes(norm))
		throw new LoupeError(
			'not-an-sae',
			`${name} normalises its input with ${show(norm)}; SAELens (and Loupe) know none, expected_average_only_in, constant_norm_rescale and layer_norm.`,
			'Choose an SAE whose cfg.json uses one of those.'
		);
	if (d.reshape_activations && d.reshape_activations !== 'none') {
		assertSupportedSaeHook(hookName, name);
		throw new LoupeError(
			'sae-mismatch',
			`${name} reshapes its input (reshape_activations ${show(d.reshape_activations)}: per-head attention outputs); Loupe cannot hook there yet.`,
			'Choose an SAE on the residual stream or a sublayer output.'
		);
	}
	if (meta.model_name != null && typeof meta.model_name !== 'string')
		throw new LoupeError(
			'not-an-sae',
			`${name}: model_name ${show(meta.model_name)} is not a name.`,
			'Fix "model_name" in cfg.json (e.g. "gpt2"), or remove it.'
		);
	const modelName: string | undefined = meta.model_name ?? undefined;
	const kwargs: Json = meta.model_from_pretrained_kwargs ?? {};
	// center_writing_weights: what TransformerLens did to the model the SAE was trained on. SAELens 6
	// loads models with from_pretrained_no_processing(**model_from_pretrained_kwargs) (load_model.py), so
	// without the key nothing was centred; pre-6 SAELens used from_pretrained, which centres the
	// writing weights of LayerNorm models (GPT-2, Pythia) by default.
	const centerInput =
		typeof kwargs.center_writing_weights === 'boolean' ? kwargs.center_writing_weights : pre6 && /gpt2|pythia/i.test(modelName ?? '');
	const conversions: string[] = [];
	if (lost)
		conversions.push(
			pre6
				? 'cfg.json has no sae_lens_version, so SAELens rebuilds metadata from its top-level keys and would find no hook_name (Loupe reads the one in metadata)'
				: 'cfg.json has no metadata.hook_name, so SAELens would find no hook (Loupe reads the top-level hook_name)'
		);
	let k: number | undefined;
	if (arch === 'topk') {
		k = d.k == null ? 100 : typeof d.k === 'number' ? d.k : NaN;
		if (d.k == null) conversions.push("k is not in cfg.json: SAELens's default, 100");
		if (!Number.isInteger(k) || k <= 0)
			throw new LoupeError(
				'not-an-sae',
				`${name} is a TopK SAE with k = ${show(d.k)}; k must be a positive integer.`,
				'Fix "k" in cfg.json.'
			);
	}
	const rescale = arch === 'topk' || batchTopK ? Boolean(d.rescale_acts_by_decoder_norm ?? batchTopK) : false;
	const numberOr = (v: unknown) => (typeof v === 'number' ? v : undefined);
	const stringOr = (...vs: unknown[]) => vs.find((v): v is string => typeof v === 'string');
	const cfg: SaeConfig = {
		architecture: arch,
		dIn,
		dSae,
		hookName,
		k,
		applyBDecToInput: Boolean(d.apply_b_dec_to_input ?? true),
		normalizeActivations: norm,
		centerInput,
		modelName,
		neuronpediaId: stringOr(meta.neuronpedia_id, d.neuronpedia_id),
		contextSize: numberOr(meta.context_size),
		prependBos: typeof meta.prepend_bos === 'boolean' ? meta.prepend_bos : undefined,
		conversions,
		format: 'SAELens',
		dtype: stringOr(d.dtype) ?? 'float32',
		name: stringOr(meta.neuronpedia_id, d.neuronpedia_id) ?? `${modelName ?? 'model'} ${hookName}`
	};
	if (transcoder) {
		const rawOut = meta.hook_name_out ?? d.hook_name_out;
		if (typeof rawOut !== 'string')
			throw new LoupeError(
				'not-an-sae',
				`${name} is a transcoder (architecture ${show(d.architecture)}) but does not say which hook it writes (metadata.hook_name_out).`,
				'Add "hook_name_out" (e.g. "blocks.5.hook_mlp_out") to its metadata.'
			);
		const input = transcoderInputHook(hookName);
		if (input.note) conversions.push(input.note);
		const dOut = d.d_out == null ? 768 : sizeOf(d.d_out);
		if (d.d_out == null) conversions.push("d_out is not in cfg.json: SAELens's default, 768");
		Object.assign(cfg, {
			hookName: input.hook,
			hookNameOut: rawOut,
			dOut,
			skip: transcoder.skip,
			name: stringOr(meta.neuronpedia_id, d.neuronpedia_id) ?? `${modelName ?? 'model'} transcoder ${input.hook} → ${rawOut}`
		});
		checkTranscoderConfig(cfg, name);
	}
	return { cfg, rescaleActsByDecoderNorm: rescale && !transcoder, batchTopK };
}

/** Loupe's config from cfg.json text, by SAELens's rules (see readSaeLensConfig). */
export function parseSaeLensConfig(cfgText: string, name = 'cfg.json'): SaeConfig {
	return readSaeLensConfig(cfgText, name).cfg;
}

/**
 * SAEs Loupe offers per model: plain data, one entry per SAE, named as SAELens names it (release id
 * + SAE id, resolved through sae/saelens-registry.ts as SAE.from_pretrained resolves them) with the
 * hub folder it lives in. The picker lists the entries of the loaded model; entries for models Loupe
 * cannot open yet wait for them. SAEs Loupe trained itself and ships with the app (`bundled`) live
 * on the app's own origin in the Hub's layout (static/bundled/, made by `npm run make-defaults`),
 * under a release id of Loupe's own that only the engine's defaults module resolves.
 */
import { resolveSaeLensRelease } from './saelens-registry';

export interface CatalogueSae {
	name: string;
	repo: string;
	folder: string; // holding cfg.json + sae_weights.safetensors, params.npz, or params.safetensors + config.json
	hook: string;
	width: number;
	description: string;
	/** SAELens's release and SAE id (SAE.from_pretrained(release, saeId)). */
	release: string;
	saeId: string;
	/** Neuronpedia's id ("gpt2-small/8-res-jb"), where Neuronpedia hosts the SAE's dashboards. */
	neuronpediaId?: string;
	/** Shipped with the app (static/bundled/{repo}/resolve/main/{folder}), with corpus statistics and automatic labels. */
	bundled?: boolean;
}

/** The release id of the SAEs Loupe ships for stories260K (not a SAELens release: resolved by engine/defaults/bundled.ts). */
export const BUNDLED_RELEASE = 'loupe-stories260K-res';
/** Where they live under static/bundled/, in the Hub's layout. */
export const BUNDLED_SAE_REPO = 'loupe/stories260K-saes';
/** stories260K's residual hook points: resid_pre of each of its 5 layers, and the last resid_post. */
export const BUNDLED_SAE_HOOKS = [0, 1, 2, 3, 4].map((l) => `blocks.${l}.hook_resid_pre`).concat('blocks.4.hook_resid_post');

/**
 * The hooks whose SAE is in static/bundled/ now (npm run make-defaults writes each as it finishes;
 * add a hook here once its files are committed; tests/unit/defaults.test.ts checks the two agree).
 */
export const SHIPPED_SAE_HOOKS = [
	'blocks.0.hook_resid_pre',
	'blocks.1.hook_resid_pre',
	'blocks.2.hook_resid_pre',
	'blocks.3.hook_resid_pre',
	'blocks.4.hook_resid_pre',
	'blocks.4.hook_resid_post'
];

const bundledSaes: CatalogueSae[] = BUNDLED_SAE_HOOKS.filter((h) => SHIPPED_SAE_HOOKS.includes(h)).map((hook) => ({
	name: `Loupe's own, ${hook}`,
	repo: BUNDLED_SAE_REPO,
	folder: hook,
	hook,
	width: 512,
	description:
		'TopK SAE (512 features) that Loupe trained on stories the model wrote (npm run make-defaults); ships with the app, with corpus statistics and automatic labels.',
	release: BUNDLED_RELEASE,
	saeId: hook,
	bundled: true
}));

function fromRelease(release: string, saeId: string, e: { name: string; hook: string; width: number; description: string }): CatalogueSae {
	const r = resolveSaeLensRelease(release, saeId);
	return { ...e, repo: r.repo, folder: r.folder, release, saeId, ...(r.neuronpediaId ? { neuronpediaId: r.neuronpediaId } : {}) };
}

export const saeCatalogue: Record<string, CatalogueSae[]> = {
	stories260K: bundledSaes,
	'gpt2-small': [0, 4, 8, 11].map((layer) =>
		fromRelease('gpt2-small-res-jb', `blocks.${layer}.hook_resid_pre`, {
			name: `gpt2-small-res-jb, layer ${layer}`,
			hook: `blocks.${layer}.hook_resid_pre`,
			width: 24576,
			description:
				"Joseph Bloom's residual-stream SAEs (ReLU, 24,576 features); trained with centred writing weights (the release's config_overrides), so Loupe centres the residual first."
		})
	),
	'gemma-3-270m-it': [
		fromRelease('gemma-scope-2-270m-it-res', 'layer_12_width_16k_l0_medium', {
			name: 'Gemma Scope 2, layer 12, 16k (L0 medium)',
			hook: 'blocks.12.hook_resid_post',
			width: 16384,
			description:
				'JumpReLU SAE on the residual stream after layer 12 (Gemma Scope 2, trained on the IT model); its dashboards are on Neuronpedia.'
		}),
		fromRelease('gemma-scope-2-270m-it-res-all', 'layer_12_width_16k_l0_big', {
			name: 'Gemma Scope 2, layer 12, 16k',
			hook: 'blocks.12.hook_resid_post',
			width: 16384,
			description: 'JumpReLU SAE on the residual stream after layer 12 (Gemma Scope 2).'
		})
	]
};

export function saesFor(modelId: string): CatalogueSae[] {
	return saeCatalogue[modelId] ?? [];
}

/** The bundled SAE a release id and SAE id name, if they name one. */
export function bundledSae(release: string, saeId: string): CatalogueSae | undefined {
	return release === BUNDLED_RELEASE ? bundledSaes.find((s) => s.saeId === saeId) : undefined;
}

/**
 * The SAE a page attaches when its URL names none: for the default model, the bundled SAE of its
 * middle layer (in the `sae=` URL form); for other models none.
 */
export function defaultSaeFor(modelId: string): string {
	return modelId === 'stories260K' ? `release:${BUNDLED_RELEASE}/blocks.2.hook_resid_pre` : '';
}

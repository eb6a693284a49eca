/**
 * SAEs Loupe offers per model: plain data, one entry per SAE, named as SAELens names it (release id
 * + SAE id, resolved through sae/saelens-registry.ts as SAE.from_pretrained resolves them) with the
 * hub folder it lives in. The picker lists the entries of the loaded model; entries for models Loupe
 * cannot open yet wait for them.
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
}

function fromRelease(release: string, saeId: string, e: { name: string; hook: string; width: number; description: string }): CatalogueSae {
	const r = resolveSaeLensRelease(release, saeId);
	return { ...e, repo: r.repo, folder: r.folder, release, saeId, ...(r.neuronpediaId ? { neuronpediaId: r.neuronpediaId } : {}) };
}

export const saeCatalogue: Record<string, CatalogueSae[]> = {
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

/**
 * SAEs Loupe offers per model: plain data, one entry per hub folder. The picker lists the entries
 * of the loaded model. Folders follow each release's published layout (SAELens's
 * pretrained_saes.yaml); entries for models Loupe cannot open yet wait for them.
 */
export interface CatalogueSae {
	name: string;
	repo: string;
	folder: string; // holding cfg.json + sae_weights.safetensors, params.npz, or params.safetensors + config.json
	hook: string;
	width: number;
	description: string;
}

export const saeCatalogue: Record<string, CatalogueSae[]> = {
	'gpt2-small': [0, 4, 8, 11].map((layer) => ({
		name: `gpt2-small-res-jb, layer ${layer}`,
		repo: 'jbloom/GPT2-Small-SAEs-Reformatted',
		folder: `blocks.${layer}.hook_resid_pre`,
		hook: `blocks.${layer}.hook_resid_pre`,
		width: 24576,
		description: "Joseph Bloom's residual-stream SAEs (ReLU, 24,576 features); trained with centred writing weights, so Loupe centres the residual first."
	})),
	'gemma-3-270m-it': [
		{
			name: 'Gemma Scope 2, layer 12, 16k',
			repo: 'google/gemma-scope-2-270m-it',
			folder: 'resid_post_all/layer_12_width_16k_l0_big',
			hook: 'blocks.12.hook_resid_post',
			width: 16384,
			description: 'JumpReLU SAE on the residual stream after layer 12 (Gemma Scope 2).'
		}
	]
};

export function saesFor(modelId: string): CatalogueSae[] {
	return saeCatalogue[modelId] ?? [];
}

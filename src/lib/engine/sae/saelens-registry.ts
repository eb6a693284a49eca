/**
 * SAELens's release registry for the releases Loupe's catalogue models pair with: plain data copied
 * from sae_lens/pretrained_saes.yaml (decoderesearch/SAELens; release → repo_id, model,
 * conversion_func, config_overrides; each SAE: id → path, l0, neuronpedia id), and the lookup
 * SAE.from_pretrained does with it (saes/sae.py from_pretrained_with_cfg_and_sparsity;
 * loading/pretrained_saes_directory.py get_repo_id_and_folder_name, get_config_overrides,
 * get_norm_scaling_factor): release id + SAE id → repository, folder, the files to fetch, the cfg
 * overrides (which include the SAE's neuronpedia_id), and a scaling factor to fold in.
 */
import { LoupeError } from '../errors';
import { readSaeFiles, type ReadSae, type SaeFile } from './load';

export interface RegistrySae {
	id: string;
	path: string;
	l0?: number;
	neuronpedia?: string;
	normScalingFactor?: number;
}

export interface SaeLensRelease {
	release: string;
	repo: string;
	model: string;
	/** conversion_func: null (SAELens folders), gemma_3 (Gemma Scope 2), gemma_2 (Gemma Scope). */
	conversion: 'sae_lens' | 'gemma_3' | 'gemma_2';
	configOverrides?: Record<string, unknown>;
	saes: RegistrySae[];
}

/** gpt2-small-res-jb: 12 layers' resid_pre and the last resid_post, neuronpedia ids per layer. */
const gpt2SmallResJb: SaeLensRelease = {
	release: 'gpt2-small-res-jb',
	repo: 'jbloom/GPT2-Small-SAEs-Reformatted',
	model: 'gpt2-small',
	conversion: 'sae_lens',
	configOverrides: { model_from_pretrained_kwargs: { center_writing_weights: true } },
	saes: [
		...[10, 10, 18, 23, 31, 41, 51, 54, 60, 70, 52, 56].map((l0, l) => ({
			id: `blocks.${l}.hook_resid_pre`,
			path: `blocks.${l}.hook_resid_pre`,
			l0,
			neuronpedia: `gpt2-small/${l}-res-jb`
		})),
		{ id: 'blocks.11.hook_resid_post', path: 'blocks.11.hook_resid_post', l0: 70, neuronpedia: 'gpt2-small/12-res-jb' }
	]
};

/**
 * Gemma Scope 2's per-site releases for Gemma 3 270M: layers 5, 9, 12, 15; widths 16k, 65k, 262k, 1m;
 * L0 big/medium/small (and a second seed of 262k medium). The yaml's l0 per layer is [big, medium,
 * small]; Neuronpedia hosts the "medium" SAEs (for -it, not the 1m ones).
 */
function gemmaScope2Res(variant: 'pt' | 'it'): SaeLensRelease {
	const l0: Record<number, [number, number, number]> = { 5: [135, 55, 18], 9: [150, 60, 20], 12: [150, 60, 20], 15: [150, 60, 20] };
	const npModel = variant === 'pt' ? 'gemma-3-270m' : 'gemma-3-270m-it';
	const saes: RegistrySae[] = [];
	for (const layer of [12, 15, 5, 9])
		for (const width of ['16k', '1m', '262k', '65k'])
			for (const [j, size] of (['big', 'medium', 'small'] as const).entries()) {
				const id = `layer_${layer}_width_${width}_l0_${size}`;
				const np = size === 'medium' && !(variant === 'it' && width === '1m') ? `${npModel}/${layer}-gemmascope-2-res-${width}` : undefined;
				saes.push({ id, path: `resid_post/${id}`, l0: l0[layer][j], ...(np ? { neuronpedia: np } : {}) });
				if (width === '262k' && size === 'medium') saes.push({ id: `${id}_seed_1`, path: `resid_post/${id}_seed_1`, l0: l0[layer][j] });
			}
	return {
		release: `gemma-scope-2-270m-${variant}-res`,
		repo: `google/gemma-scope-2-270m-${variant}`,
		model: variant === 'pt' ? 'google/gemma-3-270m' : 'google/gemma-3-270m-it',
		conversion: 'gemma_3',
		saes
	};
}

/** Gemma Scope 2's resid_post_all for Gemma 3 270M: every layer 0–17, widths 16k and 262k, L0 big/small. */
function gemmaScope2ResAll(variant: 'pt' | 'it'): SaeLensRelease {
	const big = [60, 70, 80, 90, 100, 110];
	const small = [10, 11, 13, 15, 16, 18];
	const saes: RegistrySae[] = [];
	for (let layer = 0; layer < 18; layer++)
		for (const width of ['16k', '262k'])
			for (const size of ['big', 'small'] as const) {
				const id = `layer_${layer}_width_${width}_l0_${size}`;
				saes.push({ id, path: `resid_post_all/${id}`, l0: size === 'big' ? (big[layer] ?? 120) : (small[layer] ?? 20) });
			}
	return {
		release: `gemma-scope-2-270m-${variant}-res-all`,
		repo: `google/gemma-scope-2-270m-${variant}`,
		model: variant === 'pt' ? 'google/gemma-3-270m' : 'google/gemma-3-270m-it',
		conversion: 'gemma_3',
		saes
	};
}

export const saeLensReleases: SaeLensRelease[] = [
	gpt2SmallResJb,
	gemmaScope2Res('pt'),
	gemmaScope2Res('it'),
	gemmaScope2ResAll('pt'),
	gemmaScope2ResAll('it')
];

export interface ResolvedSae {
	release: string;
	saeId: string;
	repo: string;
	folder: string;
	conversion: SaeLensRelease['conversion'];
	model: string;
	/** Files to fetch from `folder`; `optional` may be missing (SAELens tolerates no sparsity.safetensors). */
	files: string[];
	optional: string[];
	/** get_config_overrides: the release's config_overrides plus this SAE's neuronpedia_id. */
	overrides: Record<string, unknown>;
	neuronpediaId?: string;
	normScalingFactor?: number;
	l0?: number;
}

const shortList = (ids: string[]) => (ids.length > 5 ? `${ids.slice(0, 5).join(', ')}, …` : ids.join(', '));

export function resolveSaeLensRelease(release: string, saeId: string): ResolvedSae {
	const r = saeLensReleases.find((x) => x.release === release);
	if (!r)
		throw new LoupeError(
			'not-found',
			`Loupe does not know the SAELens release "${release}".`,
			`Releases Loupe knows: ${saeLensReleases.map((x) => x.release).join(', ')}. Other SAEs load from their hub folder.`
		);
	const sae = r.saes.find((s) => s.id === saeId);
	if (!sae)
		throw new LoupeError(
			'not-found',
			`ID ${saeId} not found in release ${release}.`,
			`Valid IDs are ${shortList(r.saes.map((s) => s.id))}.`
		);
	const files =
		r.conversion === 'sae_lens'
			? ['cfg.json', 'sae_weights.safetensors']
			: r.conversion === 'gemma_3'
				? ['params.safetensors']
				: ['params.npz'];
	const optional = r.conversion === 'sae_lens' ? ['sparsity.safetensors'] : r.conversion === 'gemma_3' ? ['config.json'] : [];
	return {
		release,
		saeId,
		repo: r.repo,
		folder: sae.path,
		conversion: r.conversion,
		model: r.model,
		files,
		optional,
		overrides: { ...(r.configOverrides ?? {}), ...(sae.neuronpedia ? { neuronpedia_id: sae.neuronpedia } : {}) },
		neuronpediaId: sae.neuronpedia,
		normScalingFactor: sae.normScalingFactor,
		l0: sae.l0
	};
}

/** The SAEs of a release, for a picker. */
export const releaseSaes = (release: string): RegistrySae[] => saeLensReleases.find((x) => x.release === release)?.saes ?? [];

/** Reads a registry SAE's fetched files (named `${folder}/${file}`) as SAE.from_pretrained would. */
export function readReleaseFiles(r: ResolvedSae, files: SaeFile[]): ReadSae {
	const out =
		r.conversion === 'sae_lens'
			? readSaeFiles(files, { overrides: r.overrides, normScalingFactor: r.normScalingFactor, repo: r.repo })
			: readSaeFiles(files, { repo: r.repo, modelName: r.model });
	out.cfg.neuronpediaId = r.neuronpediaId ?? out.cfg.neuronpediaId;
	out.cfg.name = r.neuronpediaId ?? `${r.release} ${r.saeId}`;
	out.cfg.format = `${out.cfg.format} (${r.release})`;
	return out;
}

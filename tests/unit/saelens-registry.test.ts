// SAE.from_pretrained(release, sae_id) for the releases Loupe's catalogue pairs with: the lookup
// against entries copied from SAELens's pretrained_saes.yaml (repo, folder, config_overrides, the
// Neuronpedia id), and the files of such a folder (written here by hand) read with the overrides.
import { describe, expect, it } from 'vitest';
import { readReleaseFiles, resolveSaeLensRelease } from '../../src/lib/engine/sae/saelens-registry';
import { saesFor } from '../../src/lib/engine/sae/catalogue';
import { randomState, safetensorsBytes } from '../saelens-spec';

const enc = (s: string) => new TextEncoder().encode(s).buffer as ArrayBuffer;

describe('SAELens release registry', () => {
	it("gpt2-small-res-jb / blocks.8.hook_resid_pre: repo, folder, the release's center_writing_weights override, the Neuronpedia id", () => {
		const r = resolveSaeLensRelease('gpt2-small-res-jb', 'blocks.8.hook_resid_pre');
		expect(r).toMatchObject({
			repo: 'jbloom/GPT2-Small-SAEs-Reformatted',
			folder: 'blocks.8.hook_resid_pre',
			conversion: 'sae_lens',
			neuronpediaId: 'gpt2-small/8-res-jb',
			files: ['cfg.json', 'sae_weights.safetensors'],
			optional: ['sparsity.safetensors']
		});
		expect(r.overrides).toEqual({ model_from_pretrained_kwargs: { center_writing_weights: true }, neuronpedia_id: 'gpt2-small/8-res-jb' });
		expect(resolveSaeLensRelease('gpt2-small-res-jb', 'blocks.11.hook_resid_post').neuronpediaId).toBe('gpt2-small/12-res-jb');
	});

	it('the override reaches the SAE: a pre-6 cfg that says nothing of centring is centred, as SAELens moves the override into metadata', () => {
		const r = resolveSaeLensRelease('gpt2-small-res-jb', 'blocks.8.hook_resid_pre');
		const d = 6,
			n = 10;
		// The jbloom/GPT2-Small-SAEs-Reformatted cfg.json keys (model name changed so only the override can centre it).
		const cfg = {
			model_name: 'some-model',
			hook_point: 'blocks.8.hook_resid_pre',
			hook_point_layer: 8,
			d_in: d,
			d_sae: n,
			dtype: 'torch.float32',
			normalize_activations: false
		};
		const { cfg: c } = readReleaseFiles(r, [
			{ name: `${r.folder}/cfg.json`, buffer: enc(JSON.stringify(cfg)) },
			{ name: `${r.folder}/sae_weights.safetensors`, buffer: safetensorsBytes(randomState(d, n, 1)) }
		]);
		expect(c).toMatchObject({
			centerInput: true,
			hookName: 'blocks.8.hook_resid_pre',
			neuronpediaId: 'gpt2-small/8-res-jb',
			name: 'gpt2-small/8-res-jb'
		});
	});

	it("gemma-scope-2-270m-pt-res / layer_12_width_16k_l0_medium: the gemma_3 loader's files, hook from the folder", () => {
		const r = resolveSaeLensRelease('gemma-scope-2-270m-pt-res', 'layer_12_width_16k_l0_medium');
		expect(r).toMatchObject({
			repo: 'google/gemma-scope-2-270m-pt',
			folder: 'resid_post/layer_12_width_16k_l0_medium',
			conversion: 'gemma_3',
			neuronpediaId: 'gemma-3-270m/12-gemmascope-2-res-16k',
			l0: 60,
			files: ['params.safetensors'],
			optional: ['config.json']
		});
		const s = randomState(4, 8, 2, { threshold: true });
		const params = safetensorsBytes({ w_enc: s.W_enc, w_dec: s.W_dec, b_enc: s.b_enc, b_dec: s.b_dec, threshold: s.threshold });
		const { cfg } = readReleaseFiles(r, [{ name: `${r.folder}/params.safetensors`, buffer: params }]);
		expect(cfg).toMatchObject({
			architecture: 'jumprelu',
			hookName: 'blocks.12.hook_resid_post',
			applyBDecToInput: false,
			modelName: 'google/gemma-3-270m',
			neuronpediaId: 'gemma-3-270m/12-gemmascope-2-res-16k'
		});
		expect(resolveSaeLensRelease('gemma-scope-2-270m-it-res', 'layer_12_width_1m_l0_medium').neuronpediaId).toBeUndefined();
		expect(resolveSaeLensRelease('gemma-scope-2-270m-it-res-all', 'layer_3_width_262k_l0_small')).toMatchObject({
			folder: 'resid_post_all/layer_3_width_262k_l0_small',
			l0: 15
		});
	});

	it('an unknown release or SAE id is refused as SAELens refuses it, with the valid ids', () => {
		expect(() => resolveSaeLensRelease('gpt2-small-res-jb', 'blocks.8.hook_resid_post')).toThrow(
			/ID blocks\.8\.hook_resid_post not found in release gpt2-small-res-jb/
		);
		expect(() => resolveSaeLensRelease('no-such-release', 'x')).toThrow(/does not know the SAELens release "no-such-release"/);
	});

	it("the catalogue's SAEs are registry entries, and their folders are the registry's", () => {
		for (const model of ['gpt2-small', 'gemma-3-270m-it'])
			for (const c of saesFor(model)) {
				const r = resolveSaeLensRelease(c.release, c.saeId);
				expect([c.repo, c.folder]).toEqual([r.repo, r.folder]);
			}
		expect(saesFor('gpt2-small').find((c) => c.hook === 'blocks.8.hook_resid_pre')?.neuronpediaId).toBe('gpt2-small/8-res-jb');
	});
});

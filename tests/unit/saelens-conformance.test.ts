// SAE folders written here by hand from SAELens's specs (tests/saelens-spec.ts, not Loupe's writer),
// one per rule SAELens applies when it loads them, each checked against the encodings SAELens's own
// formulas give (computed in plain TypeScript in tests/saelens-spec.ts, independently of Loupe's SAE
// classes); and every architecture Loupe trains, exported and re-read by SAELens's rules.
import { describe, expect, it } from 'vitest';
import { readSaeFiles, type SaeFile } from '../../src/lib/engine/sae/load';
import { Sae } from '../../src/lib/engine/sae/sae';
import { featureDensities } from '../../src/lib/engine/sae/corpus-stats';
import { forward, initParams } from '../../src/lib/engine/train/reference';
import { defaultTrainConfig, newCheckpoint, shapeOf, toSaeLens, type TrainConfig } from '../../src/lib/engine/train/training-run';
import { seededRandom } from '../../src/lib/engine/sample/prng';
import { maxAbsDiff } from '../numeric';
import {
	parseSafetensors,
	randomState,
	randomTokens,
	safetensorsBytes,
	saeLensDefaulting,
	saeLensForward,
	type State
} from '../saelens-spec';

const enc = (s: string) => new TextEncoder().encode(s).buffer as ArrayBuffer;
const v6 = { sae_lens_version: '6.5.0', sae_lens_training_version: '6.5.0' };

/** An SAELens folder as SAE.save_model writes it (cfg.json + sae_weights.safetensors, + extras). */
function folder(cfg: object, state: State, extra: SaeFile[] = []): SaeFile[] {
	return [
		{ name: 'sae/cfg.json', buffer: enc(JSON.stringify(cfg)) },
		{ name: 'sae/sae_weights.safetensors', buffer: safetensorsBytes(state) },
		...extra
	];
}

/** Loupe's encodings and reconstructions of tokens xs, through what it reads from the files. */
function loupe(files: SaeFile[], xs: number[][]) {
	const { cfg, weights, logSparsity } = readSaeFiles(files);
	const sae = Sae.create(cfg, weights);
	const x = Float32Array.from(xs.flat());
	const acts = sae.encode(x, xs.length);
	return { cfg, logSparsity, acts, recon: sae.decode(acts, xs.length, sae.preprocess(x, xs.length)) };
}

function expectEncodings(files: SaeFile[], cfgForSaeLens: object, state: State, xs: number[][], tol = 2e-5) {
	const got = loupe(files, xs);
	const want = xs.map((x) => saeLensForward(saeLensDefaulting(cfgForSaeLens as never), state, x));
	const wantActs = Float32Array.from(want.flatMap((w) => w.acts));
	const scale = Math.max(1, ...wantActs.map(Math.abs));
	expect(maxAbsDiff(got.acts, wantActs) / scale).toBeLessThan(tol);
	expect(wantActs.filter((a) => a > 0).length).toBeGreaterThan(xs.length); // something fires, not everything
	expect(wantActs.filter((a) => a > 0).length).toBeLessThan(wantActs.length);
	expect(maxAbsDiff(got.recon, Float32Array.from(want.flatMap((w) => w.recon)))).toBeLessThan(1e-3);
	return got;
}

describe('SAELens rules, one folder each', () => {
	it('layer_norm: the centred input over (unbiased std + 1e-5), undone as x̂·std + mean', () => {
		const d = 32,
			n = 48;
		const state = randomState(d, n, 11);
		const cfg = {
			architecture: 'standard',
			d_in: d,
			d_sae: n,
			dtype: 'float32',
			apply_b_dec_to_input: true,
			normalize_activations: 'layer_norm',
			metadata: { ...v6, hook_name: 'blocks.3.hook_resid_post' }
		};
		expectEncodings(folder(cfg, state), cfg, state, randomTokens(d, 6, 12), 1e-4);
	});

	it('TopK with rescale_acts_by_decoder_norm: TopK on pre·‖W_dec[f]‖, decoded through acts/‖W_dec[f]‖', () => {
		const d = 16,
			n = 40;
		const state = randomState(d, n, 21);
		const cfg = {
			architecture: 'topk',
			k: 6,
			rescale_acts_by_decoder_norm: true,
			d_in: d,
			d_sae: n,
			apply_b_dec_to_input: true,
			normalize_activations: 'none',
			metadata: { ...v6, hook_name: 'blocks.1.hook_resid_pre' }
		};
		const got = expectEncodings(folder(cfg, state), cfg, state, randomTokens(d, 5, 22));
		expect(got.cfg.conversions?.join(' ')).toMatch(/rescale_acts_by_decoder_norm/);
	});

	it('activation_norm_scaling_factor is not a SAELens key: expected_average_only_in runs unscaled, as SAE.load_from_disk runs it', () => {
		const d = 8,
			n = 24;
		const state = randomState(d, n, 31);
		const cfg = {
			architecture: 'standard',
			d_in: d,
			d_sae: n,
			apply_b_dec_to_input: true,
			normalize_activations: 'expected_average_only_in',
			activation_norm_scaling_factor: 2.5,
			metadata: { ...v6, hook_name: 'blocks.0.hook_resid_post' }
		};
		expectEncodings(folder(cfg, state), { ...cfg, normalize_activations: 'none' }, state, randomTokens(d, 5, 32));
	});

	it("a training checkpoint's activation_scaler.json: the SAE saw x·s, so s is folded in (fold_activation_norm_scaling_factor)", () => {
		const d = 8,
			n = 24,
			s = 0.4;
		const state = randomState(d, n, 41);
		const cfg = {
			architecture: 'standard',
			d_in: d,
			d_sae: n,
			apply_b_dec_to_input: true,
			normalize_activations: 'expected_average_only_in',
			metadata: { ...v6, hook_name: 'blocks.0.hook_resid_post' }
		};
		const xs = randomTokens(d, 5, 42);
		const got = loupe(folder(cfg, state, [{ name: 'sae/activation_scaler.json', buffer: enc(JSON.stringify({ scaling_factor: s })) }]), xs);
		// What the trainer computed: the SAE on x·s, its reconstruction divided by s (ActivationScaler.unscale).
		const want = xs.map((x) =>
			saeLensForward(
				{ ...cfg, normalize_activations: 'none' },
				state,
				x.map((v) => v * s)
			)
		);
		expect(maxAbsDiff(got.acts, Float32Array.from(want.flatMap((w) => w.acts)))).toBeLessThan(2e-5);
		expect(maxAbsDiff(got.recon, Float32Array.from(want.flatMap((w) => w.recon.map((v) => v / s))))).toBeLessThan(1e-3);
	});

	it('batchtopk: run as save_inference_model saves it (decoder norms folded, JumpReLU at topk_threshold), refused without one', () => {
		const d = 12,
			n = 30,
			tau = 0.35;
		const state = randomState(d, n, 51);
		const cfg = {
			architecture: 'batchtopk',
			k: 4.5,
			d_in: d,
			d_sae: n,
			apply_b_dec_to_input: true,
			normalize_activations: 'none',
			metadata: { ...v6, hook_name: 'blocks.2.hook_resid_post' }
		};
		// save_inference_model: _fold_norm_topk (BatchTopKTrainingSAEConfig rescales by default), threshold = topk_threshold.
		const norms = Array.from({ length: n }, (_, f) => Math.hypot(...state.W_dec.data.slice(f * d, (f + 1) * d)));
		const inference: State = {
			W_enc: { shape: [d, n], data: state.W_enc.data.map((w, i) => w * norms[i % n]) },
			W_dec: { shape: [n, d], data: state.W_dec.data.map((w, i) => w / norms[Math.floor(i / d)]) },
			b_enc: { shape: [n], data: state.b_enc.data.map((b, f) => b * norms[f]) },
			b_dec: state.b_dec,
			threshold: { shape: [n], data: Array(n).fill(tau) }
		};
		const withTau = { ...state, topk_threshold: { shape: [], data: [tau] } };
		const got = expectEncodings(folder(cfg, withTau), { ...cfg, architecture: 'jumprelu' }, inference, randomTokens(d, 6, 52));
		expect(got.cfg.architecture).toBe('jumprelu');
		expect(() => readSaeFiles(folder(cfg, state))).toThrow(/BatchTopK.*SAELens does not load for inference.*no scalar topk_threshold/);
	});

	it('a pre-6 cfg is read as handle_pre_6_0_config reads it (hook_point, activation_fn_str topk + activation_fn_kwargs.k, boolean normalize_activations)', () => {
		const d = 10,
			n = 20;
		const state = randomState(d, n, 61);
		const cfg = {
			model_name: 'pythia-70m-deduped',
			hook_point: 'blocks.2.hook_resid_post',
			d_in: d,
			d_sae: n,
			activation_fn_str: 'topk',
			activation_fn_kwargs: { k: 3 },
			normalize_activations: false,
			model_from_pretrained_kwargs: { center_writing_weights: false }
		};
		const got = expectEncodings(folder(cfg, state), cfg, state, randomTokens(d, 5, 62));
		expect(got.cfg).toMatchObject({
			architecture: 'topk',
			k: 3,
			hookName: 'blocks.2.hook_resid_post',
			centerInput: false,
			normalizeActivations: 'none'
		});
	});

	it('sparsity.safetensors (log10 firing rate) comes with the SAE and gives densities before any corpus run', () => {
		const d = 4,
			n = 6;
		const state = randomState(d, n, 71);
		const log10 = [-1, -2, -3.5, -10, -0.5, -6];
		const cfg = { architecture: 'standard', d_in: d, d_sae: n, metadata: { ...v6, hook_name: 'blocks.0.hook_resid_pre' } };
		const sparsity = { name: 'sae/sparsity.safetensors', buffer: safetensorsBytes({ sparsity: { shape: [n], data: log10 } }) };
		const { logSparsity } = readSaeFiles(folder(cfg, state, [sparsity]));
		expect([...logSparsity!]).toEqual(log10.map(Math.fround));
		const dens = featureDensities({ logSparsity })!;
		expect(dens.source).toBe('sparsity.safetensors');
		expect(dens.density[0]).toBeCloseTo(0.1, 6);
		expect(dens.density[3]).toBe(0); // log10(0 + 1e-10): never fired
		const short = { name: 'sae/sparsity.safetensors', buffer: safetensorsBytes({ sparsity: { shape: [3], data: [-1, -1, -1] } }) };
		expect(() => readSaeFiles(folder(cfg, state, [short]))).toThrow(/sparsity\.safetensors has 3 entries but the SAE has 6 latents/);
	});
});

describe('Gemma Scope hook names, as SAELens names them', () => {
	const d = 4,
		n = 8;
	const s = randomState(d, n, 81, { threshold: true });
	const gs2 = safetensorsBytes({ w_enc: s.W_enc, w_dec: s.W_dec, b_enc: s.b_enc, b_dec: s.b_dec, threshold: s.threshold });
	const cfg2 = (hf: string) => ({
		name: 'config.json',
		buffer: enc(
			JSON.stringify({
				width: n,
				model_name: 'gemma-v3-270m-pt',
				architecture: 'jump_relu',
				l0: 60,
				affine_connection: false,
				type: 'sae',
				hf_hook_point_in: hf,
				hf_hook_point_out: hf
			})
		)
	});

	it('Gemma Scope 2 folders: resid_post → hook_resid_post, mlp_out → hook_mlp_out (get_gemma_3_config_from_hf)', () => {
		expect(readSaeFiles([{ name: 'resid_post/layer_12_width_16k_l0_medium/params.safetensors', buffer: gs2 }]).cfg.hookName).toBe(
			'blocks.12.hook_resid_post'
		);
		expect(readSaeFiles([{ name: 'mlp_out_all/layer_7_width_16k_l0_small/params.safetensors', buffer: gs2 }]).cfg.hookName).toBe(
			'blocks.7.hook_mlp_out'
		);
	});

	it("Gemma Scope 2's config.json alone: the HF module it reads names the hook", () => {
		expect(
			readSaeFiles([{ name: 'params.safetensors', buffer: gs2 }, cfg2('model.layers.3.post_feedforward_layernorm.output')]).cfg.hookName
		).toBe('blocks.3.hook_mlp_out');
		expect(readSaeFiles([{ name: 'params.safetensors', buffer: gs2 }, cfg2('model.layers.9.output')]).cfg.hookName).toBe(
			'blocks.9.hook_resid_post'
		);
	});

	it('attention SAEs read attn.hook_z (the o_proj input), which Loupe cannot hook yet: refused, saying so', () => {
		expect(() => readSaeFiles([{ name: 'attn_out/layer_12_width_16k_l0_medium/params.safetensors', buffer: gs2 }])).toThrow(
			/reads "blocks\.12\.attn\.hook_z", the attention heads' outputs before o_proj.*Loupe cannot hook there yet/
		);
		expect(() => readSaeFiles([{ name: 'params.safetensors', buffer: gs2 }, cfg2('model.layers.5.self_attn.o_proj.input')])).toThrow(
			/blocks\.5\.attn\.hook_z/
		);
	});

	it('Gemma Scope (npz): the site is in the repository name, …-mlp → hook_mlp_out, …-att → attn.hook_z (get_gemma_2_config_from_hf)', async () => {
		const { zipSync } = await import('fflate');
		const npy = (shape: number[], values: number[]) => {
			let h = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
			h += ' '.repeat(63 - ((10 + h.length) % 64)) + '\n';
			const out = new Uint8Array(10 + h.length + 4 * values.length);
			out.set([0x93, 78, 85, 77, 80, 89, 1, 0]);
			new DataView(out.buffer).setUint16(8, h.length, true);
			out.set(new TextEncoder().encode(h), 10);
			out.set(new Uint8Array(Float32Array.from(values).buffer), 10 + h.length);
			return out;
		};
		const npz = zipSync({
			'W_enc.npy': npy([d, n], s.W_enc.data),
			'W_dec.npy': npy([n, d], s.W_dec.data),
			'b_enc.npy': npy([n], s.b_enc.data),
			'b_dec.npy': npy([d], s.b_dec.data),
			'threshold.npy': npy([n], s.threshold.data)
		}).buffer as ArrayBuffer;
		const file = { name: 'layer_20/width_16k/average_l0_71/params.npz', buffer: npz };
		expect(readSaeFiles([file], { repo: 'google/gemma-scope-2b-pt-mlp' }).cfg.hookName).toBe('blocks.20.hook_mlp_out');
		expect(readSaeFiles([file], { repo: 'google/gemma-scope-2b-pt-res' }).cfg.hookName).toBe('blocks.20.hook_resid_post');
		expect(() => readSaeFiles([file], { repo: 'google/gemma-scope-2b-pt-att' })).toThrow(/attn\.hook_z.*cannot hook there yet/);
	});

	it('a Gemma Scope 2 affine transcoder without its affine tensor is refused', () => {
		const t = {
			name: 'config.json',
			buffer: enc(
				JSON.stringify({ type: 'transcoder', affine_connection: true, hf_hook_point_in: 'model.layers.5.pre_feedforward_layernorm.output' })
			)
		};
		expect(() => readSaeFiles([{ name: 'params.safetensors', buffer: gs2 }, t])).toThrow(
			/affine_connection, but the file has no affine_skip_connection tensor/
		);
	});
});

describe('an SAE trained in Loupe, exported and re-read by the rules SAELens applies', () => {
	for (const arch of ['topk', 'relu', 'jumprelu'] as const) {
		it(`${arch}: SAELens finds its hook and model in metadata and encodes raw activations as training encoded scaled ones`, () => {
			const random = seededRandom(5);
			const d = 16,
				n = 40,
				B = 10,
				scale = 0.45;
			const cfg: TrainConfig = { ...defaultTrainConfig('gpt2-small', 'blocks.6.hook_resid_pre'), arch, width: n, k: 5, storyTokens: 100 };
			const shape = shapeOf(cfg, d);
			const params = initParams(
				shape,
				random,
				Float32Array.from({ length: d }, () => random() - 0.5)
			);
			params.bEnc = Float32Array.from({ length: n }, () => (random() - 0.5) * 0.2);
			if (params.logThreshold) params.logThreshold = Float32Array.from({ length: n }, () => Math.log(0.05 + 0.2 * random()));
			const xs = Array.from({ length: B }, () => Array.from({ length: d }, () => Math.fround((random() - 0.5) * 6)));
			const trained = forward(
				params,
				shape,
				Float32Array.from(xs.flat(), (v) => v * scale),
				B
			);
			const cp = {
				...newCheckpoint('t', cfg, d, 10, params),
				scale,
				fires: Float64Array.from({ length: n }, (_, f) => f % 4),
				sampled: 100
			};
			const out = toSaeLens(cp);
			// What SAE.load_from_disk sees: handle_config_defaulting, then SAEConfig.from_dict.
			const saeLensCfg = saeLensDefaulting(JSON.parse(out.cfgJson));
			expect(saeLensCfg.metadata).toMatchObject({
				hook_name: 'blocks.6.hook_resid_pre',
				model_name: 'gpt2-small',
				context_size: 101,
				prepend_bos: true,
				model_from_pretrained_kwargs: { center_writing_weights: false }
			});
			expect(Number(saeLensCfg.metadata.sae_lens_version.split('.')[0])).toBeGreaterThanOrEqual(6);
			expect(saeLensCfg.architecture).toBe({ topk: 'topk', relu: 'standard', jumprelu: 'jumprelu' }[arch]);
			const state = parseSafetensors(out.safetensors);
			const acts = xs.flatMap((x) => saeLensForward(saeLensCfg, state, x).acts);
			for (let i = 0; i < B * n; i++) {
				expect(acts[i] > 0, `entry ${i} active`).toBe(trained.acts[i] > 0);
				expect(Math.abs(acts[i] - trained.acts[i])).toBeLessThan(1e-4 * (1 + Math.abs(trained.acts[i])));
			}
			// sparsity.safetensors as SAELens's trainer writes it: log10(rate + 1e-10).
			const sp = parseSafetensors(out.sparsity).sparsity.data;
			expect(sp[1]).toBeCloseTo(Math.log10(0.01 + 1e-10), 5);
			expect(sp[0]).toBeCloseTo(-10, 5);
			// And Loupe reads it back the same: same hook, same encodings.
			const back = loupe(
				[
					{ name: 'cfg.json', buffer: enc(out.cfgJson) },
					{ name: 'sae_weights.safetensors', buffer: out.safetensors.slice().buffer as ArrayBuffer }
				],
				xs
			);
			expect(back.cfg.hookName).toBe('blocks.6.hook_resid_pre');
			expect(maxAbsDiff(back.acts, Float32Array.from(acts))).toBeLessThan(1e-4);
		});
	}
});

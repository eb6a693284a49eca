// Fuzz: SAE folders. SAELens cfg.json (current and pre-6 keys) alone and with its weights, Gemma
// Scope 2 config.json + params.safetensors, Gemma Scope params.npz: valid files written here, one
// value at a time replaced by a hostile one (objects whose toString is not a function, __proto__
// keys, sizes that are negative, fractional or past 2⁵³), keys deleted, text cut short.
import { afterAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { zipSync } from 'fflate';
import { readSaeLensConfig } from '../../../src/lib/engine/sae/formats/saelens-config';
import { readSaeLens } from '../../../src/lib/engine/sae/formats/saelens';
import { readGemmaScope2, readGemmaScopeNpz } from '../../../src/lib/engine/sae/formats/gemma-scope';
import { LoupeError } from '../../../src/lib/engine/errors';
import { fuzz, runCase, Tally } from '../../fuzz/harness';
import { mutatedJson } from '../../fuzz/json';
import { npyFile, safetensorsFile } from '../../fuzz/files';

const cfgTally = new Tally('SAELens cfg.json');
const folderTally = new Tally('SAELens folder (cfg.json + safetensors)');
const gs2Tally = new Tally('Gemma Scope 2 config.json + params.safetensors');
const gsTally = new Tally('Gemma Scope params.npz');
afterAll(() => {
	for (const t of [cfgTally, folderTally, gs2Tally, gsTally]) console.log(t.line());
});

const dIn = 2;
const dSae = 3;
const current = {
	architecture: 'topk',
	d_in: dIn,
	d_sae: dSae,
	dtype: 'float32',
	device: 'cpu',
	apply_b_dec_to_input: true,
	normalize_activations: 'none',
	reshape_activations: 'none',
	k: 2,
	rescale_acts_by_decoder_norm: true,
	metadata: {
		sae_lens_version: '6.18.0',
		model_name: 'gpt2',
		hook_name: 'blocks.0.hook_resid_pre',
		context_size: 128,
		prepend_bos: true,
		model_from_pretrained_kwargs: { center_writing_weights: false },
		neuronpedia_id: 'gpt2-small/0-res-jb'
	}
};
const pre6 = {
	d_in: dIn,
	d_sae: dSae,
	hook_point: 'blocks.0.hook_resid_pre',
	model_name: 'gpt2',
	activation_fn_str: 'relu',
	normalize_activations: true,
	dtype: 'float32',
	context_size: 128,
	expansion_factor: 1.5,
	neuronpedia_id: null
};
const f32 = (n: number, f: (i: number) => number) => new Uint8Array(Float32Array.from({ length: n }, (_, i) => f(i)).buffer);
const tensors = (names: Record<string, [number[], number]>) => {
	let off = 0;
	const header: Record<string, unknown> = {};
	const parts: Uint8Array[] = [];
	for (const [k, [shape, n]] of Object.entries(names)) {
		header[k] = { dtype: 'F32', shape, data_offsets: [off, off + 4 * n] };
		parts.push(f32(n, (i) => Math.cos(i + off)));
		off += 4 * n;
	}
	const data = new Uint8Array(off);
	parts.reduce((p, b) => (data.set(b, p), p + b.length), 0);
	return safetensorsFile(header, data);
};
const saeLensWeights = tensors({
	W_enc: [[dIn, dSae], 6],
	W_dec: [[dSae, dIn], 6],
	b_enc: [[dSae], 3],
	b_dec: [[dIn], 2],
	threshold: [[dSae], 3]
});
const gs2Weights = tensors({
	w_enc: [[dIn, dSae], 6],
	w_dec: [[dSae, dIn], 6],
	b_enc: [[dSae], 3],
	b_dec: [[dIn], 2],
	threshold: [[dSae], 3]
});
const gs2Config = {
	width: dSae,
	model_name: 'gemma-3-270m',
	architecture: 'jump_relu',
	l0: 20,
	type: 'sae',
	hf_hook_point_in: 'model.layers.5.output',
	hf_hook_point_out: 'model.layers.5.output',
	affine_connection: false
};
const sizes = [
	0,
	-1,
	2.5,
	1e300,
	2 ** 53 + 2,
	'2',
	[2],
	{ toString: 1 },
	'blocks.0.hook_resid_pre',
	'topk',
	'jumprelu',
	'batchtopk',
	'standard',
	'layer_norm',
	'5.0.0',
	'6.0.0-rc.1',
	'hook_z'
];
const buf = (b: Uint8Array) => new Uint8Array(b).buffer as ArrayBuffer;

describe('fuzz: SAE configs', () => {
	it('the valid files read', () => {
		expect(readSaeLensConfig(JSON.stringify(current)).cfg).toMatchObject({ architecture: 'topk', dIn, dSae, k: 2 });
		expect(readSaeLensConfig(JSON.stringify(pre6)).cfg).toMatchObject({ architecture: 'relu', dIn, dSae });
		expect(readSaeLens(JSON.stringify(current), buf(saeLensWeights)).cfg.dSae).toBe(dSae);
		expect(
			readGemmaScope2(JSON.stringify(gs2Config), buf(gs2Weights), { path: 'resid_post/layer_5_width_16k_l0_small/params.safetensors' }).cfg
				.hookName
		).toBe('blocks.5.hook_resid_post');
	});

	for (const [name, doc] of [
		['current (SAELens 6)', current],
		['pre-6', pre6]
	] as const)
		it(`${name} cfg.json, one value or key at a time`, () => {
			fuzz(cfgTally, mutatedJson(doc, sizes), ({ text }) => runCase(text.length, () => readSaeLensConfig(text, 'cfg.json')), 1200);
		});

	it('SAELens folders: mutated cfg.json with the real weights', () => {
		fuzz(
			folderTally,
			mutatedJson(current, sizes),
			({ text }) => runCase(saeLensWeights.length, () => readSaeLens(text, buf(saeLensWeights))),
			600
		);
	});

	it('Gemma Scope 2: mutated config.json with the real params, and paths that name or do not name the site', () => {
		const path = fc.constantFrom(
			'resid_post/layer_5_width_16k_l0_small/params.safetensors',
			'params.safetensors',
			'transcoder/layer_1/params.safetensors',
			'layer_x/params.safetensors',
			''
		);
		fuzz(
			gs2Tally,
			fc.tuple(mutatedJson(gs2Config, sizes), path),
			([{ text }, p]) => runCase(gs2Weights.length, () => readGemmaScope2(text, buf(gs2Weights), { path: p })),
			600
		);
	});

	it('Gemma Scope params.npz with members missing, misshapen or renamed', () => {
		const member = (shape: number[]) =>
			npyFile(
				shape,
				Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => i / 7)
			).bytes;
		const full: Record<string, number[]> = { W_enc: [dIn, dSae], W_dec: [dSae, dIn], b_enc: [dSae], b_dec: [dIn], threshold: [dSae] };
		const arb = fc.record({
			drop: fc.subarray(Object.keys(full), { maxLength: 2 }),
			reshape: fc.option(fc.tuple(fc.constantFrom(...Object.keys(full)), fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 3 })))
		});
		fuzz(
			gsTally,
			arb,
			({ drop, reshape }) => {
				const files: Record<string, Uint8Array> = {};
				for (const [k, shape] of Object.entries(full))
					if (!drop.includes(k)) files[`${k}.npy`] = member(reshape && reshape[0] === k ? reshape[1] : shape);
				const z = zipSync(files);
				return runCase(
					z.length,
					() => readGemmaScopeNpz(buf(z), { repo: 'google/gemma-scope-2b-pt-res', path: 'layer_3/width_16k/average_l0_50/params.npz' }),
					{ budget: 1032 * 8 * z.length }
				);
			},
			300
		);
	});

	// Counterexamples fuzzing found, kept as plain cases.
	it.each([
		['config.json that is JSON null', 'null'],
		['config.json that is an array', '[1,2]'],
		['config.json that is a string', '"sae"']
	])('Gemma Scope 2: %s is refused with a message', (_, text) => {
		expect(() => readGemmaScope2(text, buf(gs2Weights), { path: 'resid_post/layer_5/params.safetensors' })).toThrow(LoupeError);
		expect(() => readGemmaScope2(text, buf(gs2Weights), { path: 'resid_post/layer_5/params.safetensors' })).toThrow(
			/config.json of this Gemma Scope 2 SAE is not a JSON object/
		);
	});

	it.each([
		[
			'normalize_activations an object whose toString is 1',
			{ ...current, normalize_activations: { toString: 1 } },
			/normalises its input with \{"toString":1\}/
		],
		['architecture an object whose toString is 1', { ...current, architecture: { toString: 1 } }, /architecture \{"toString":1\}/],
		['d_in 0', { ...current, d_in: 0 }, /sizes \(metadata.hook_name, d_in, d_sae\)/],
		['d_sae -3', { ...current, d_sae: -3 }, /sizes \(metadata.hook_name, d_in, d_sae\)/],
		['d_in 1e300', { ...current, d_in: 1e300 }, /sizes \(metadata.hook_name, d_in, d_sae\)/],
		['model_name an object whose toString is 1', { ...pre6, model_name: { toString: 1 } }, /model_name \{"toString":1\} is not a name/]
	])('SAELens cfg.json with %s is refused with a message', (_, cfg, message) => {
		expect(() => readSaeLensConfig(JSON.stringify(cfg))).toThrow(LoupeError);
		expect(() => readSaeLensConfig(JSON.stringify(cfg))).toThrow(message);
	});
});

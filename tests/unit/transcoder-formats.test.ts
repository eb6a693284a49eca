// Transcoders in the formats that publish them (Gemma Scope 2's params.safetensors + config.json,
// SAELens's cfg.json + sae_weights.safetensors), laid out byte by byte here, read back, and run:
// the expected outputs are SAELens's and Gemma Scope 2's forwards (sae_lens/saes/transcoder.py;
// the Gemma Scope 2 tutorial's JumpReLUSAE) written out as plain loops in this file.
import { describe, expect, it } from 'vitest';
import { readSaeFiles } from '../../src/lib/engine/sae/load';
import { writeSaeLens } from '../../src/lib/engine/sae/formats/saelens';
import { Transcoder, plainTranscoder } from '../../src/lib/engine/sae/transcoder';
import { seededRandom } from '../../src/lib/engine/sample/prng';
import { maxAbsDiff } from '../numeric';

const dIn = 5;
const dSae = 7;
const dOut = 4; // ≠ d_in, so every orientation mistake shows as a shape error or a wrong value
const T = 3;
const rnd = seededRandom(11);
const u = (n: number, s = 1) => Array.from({ length: n }, () => (rnd() * 2 - 1) * s);
const wEnc = u(dIn * dSae); // [d_in, d_sae]
const bEnc = u(dSae, 0.3);
const wDec = u(dSae * dOut); // [d_sae, d_out]
const bDec = u(dOut, 0.5);
const threshold = Array.from({ length: dSae }, (_, f) => 0.1 + 0.15 * f);
const affine = u(dIn * dOut, 0.4); // Gemma Scope 2: [d_in, d_out], out += x · A
const wSkip = Array.from({ length: dOut * dIn }, (_, k) => affine[(k % dIn) * dOut + Math.floor(k / dIn)]); // SAELens: [d_out, d_in] = Aᵀ
const x = u(T * dIn, 1.5);

/** safetensors by the spec: u64 header length, JSON header, raw little-endian f32 data. */
function safetensors(tensors: [string, number[], number[]][]): ArrayBuffer {
	const header: Record<string, unknown> = {};
	let off = 0;
	for (const [name, shape, values] of tensors) {
		header[name] = { dtype: 'F32', shape, data_offsets: [off, off + 4 * values.length] };
		off += 4 * values.length;
	}
	const json = new TextEncoder().encode(JSON.stringify(header));
	const out = new Uint8Array(8 + json.length + off);
	new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
	out.set(json, 8);
	let p = 8 + json.length;
	for (const [, , values] of tensors) {
		out.set(new Uint8Array(Float32Array.from(values).buffer), p);
		p += 4 * values.length;
	}
	return out.buffer;
}
const text = (s: unknown) => new TextEncoder().encode(JSON.stringify(s)).buffer as ArrayBuffer;

/** The forwards, as the sources write them: pre = x W_enc + b_enc (no b_dec on the input). */
function expected(arch: 'relu' | 'jumprelu', skip: 'none' | 'saelens' | 'gemma'): number[] {
	const out: number[] = [];
	for (let t = 0; t < T; t++) {
		const acts: number[] = [];
		for (let f = 0; f < dSae; f++) {
			let pre = bEnc[f];
			for (let i = 0; i < dIn; i++) pre += x[t * dIn + i] * wEnc[i * dSae + f];
			const relu = Math.max(pre, 0);
			acts.push(arch === 'relu' ? relu : relu * (pre > threshold[f] ? 1 : 0)); // relu(pre) · (pre > θ)
		}
		for (let o = 0; o < dOut; o++) {
			let y = bDec[o];
			for (let f = 0; f < dSae; f++) y += acts[f] * wDec[f * dOut + o];
			for (let i = 0; i < dIn; i++) {
				if (skip === 'saelens') y += x[t * dIn + i] * wSkip[o * dIn + i]; // x @ W_skip.T
				if (skip === 'gemma') y += x[t * dIn + i] * affine[i * dOut + o]; // x @ affine_skip_connection
			}
			out.push(y);
		}
	}
	return out;
}

const run = (files: { name: string; buffer: ArrayBuffer }[], opts = {}) => {
	const { cfg, weights } = readSaeFiles(files, opts);
	const tc = Transcoder.fromSae(cfg, weights);
	return { cfg, weights, out: tc.forward(Float32Array.from(x), T).out };
};

describe('Gemma Scope 2 transcoders', () => {
	const params = (withAffine: boolean) =>
		safetensors([
			['w_enc', [dIn, dSae], wEnc],
			['w_dec', [dSae, dOut], wDec],
			['b_enc', [dSae], bEnc],
			['b_dec', [dOut], bDec],
			['threshold', [dSae], threshold],
			...(withAffine ? ([['affine_skip_connection', [dIn, dOut], affine]] as [string, number[], number[]][]) : [])
		]);
	const config = (affine: boolean) => ({
		width: dSae,
		model_name: 'gemma-v3-270m-pt',
		architecture: 'jump_relu',
		type: 'transcoder',
		l0: 10,
		hf_hook_point_in: 'model.layers.5.pre_feedforward_layernorm.output',
		hf_hook_point_out: 'model.layers.5.post_feedforward_layernorm.output',
		affine_connection: affine
	});

	it('an affine transcoder reads hook_mlp_in, writes hook_mlp_out and adds x · affine_skip_connection', () => {
		const { cfg, weights, out } = run([
			{ name: 'transcoder_all/layer_5_width_16k_l0_small_affine/params.safetensors', buffer: params(true) },
			{ name: 'transcoder_all/layer_5_width_16k_l0_small_affine/config.json', buffer: text(config(true)) }
		]);
		expect([cfg.hookName, cfg.hookNameOut, cfg.dIn, cfg.dSae, cfg.dOut, cfg.skip, cfg.architecture]).toEqual([
			'blocks.5.hook_mlp_in',
			'blocks.5.hook_mlp_out',
			dIn,
			dSae,
			dOut,
			true,
			'jumprelu'
		]);
		expect(maxAbsDiff(out, expected('jumprelu', 'gemma'))).toBeLessThan(1e-5);
		// Stored as SAELens's W_skip [d_out, d_in], which the attribution graph reads.
		expect(maxAbsDiff(weights.wSkip!, Float32Array.from(wSkip))).toBe(0);
		const plain = plainTranscoder(cfg, weights);
		expect([plain.layer, plain.dOut, plain.threshold === weights.threshold]).toEqual([5, dOut, true]);
	});

	it('without the affine connection, and with the hooks from config.json alone (no folder in the path)', () => {
		const { cfg, out } = run([
			{ name: 'params.safetensors', buffer: params(false) },
			{ name: 'config.json', buffer: text(config(false)) }
		]);
		expect([cfg.hookName, cfg.hookNameOut, cfg.skip]).toEqual(['blocks.5.hook_mlp_in', 'blocks.5.hook_mlp_out', undefined]);
		expect(maxAbsDiff(out, expected('jumprelu', 'none'))).toBeLessThan(1e-5);
	});

	it('refusals: affine_connection without its tensor, a misshapen skip, a cross-layer transcoder', () => {
		expect(() =>
			run([
				{ name: 'params.safetensors', buffer: params(false) },
				{ name: 'config.json', buffer: text(config(true)) }
			])
		).toThrow(/affine_connection.*no affine_skip_connection/);
		const bad = safetensors([
			['w_enc', [dIn, dSae], wEnc],
			['w_dec', [dSae, dOut], wDec],
			['b_enc', [dSae], bEnc],
			['b_dec', [dOut], bDec],
			['threshold', [dSae], threshold],
			['affine_skip_connection', [dOut, dIn], affine]
		]);
		expect(() =>
			run([
				{ name: 'params.safetensors', buffer: bad },
				{ name: 'config.json', buffer: text(config(true)) }
			])
		).toThrow(/affine_skip_connection.*\[4, 5\].*needs \[5, 4\]/);
		expect(() => run([{ name: 'clt/layer_5_width_16k/params.safetensors', buffer: params(false) }])).toThrow(/cross-layer transcoder/);
	});
});

describe('SAELens transcoders', () => {
	const weightsFile = (skip: boolean, jump: boolean) =>
		safetensors([
			['W_enc', [dIn, dSae], wEnc],
			['W_dec', [dSae, dOut], wDec],
			['b_enc', [dSae], bEnc],
			['b_dec', [dOut], bDec],
			...(jump ? ([['threshold', [dSae], threshold]] as [string, number[], number[]][]) : []),
			...(skip ? ([['W_skip', [dOut, dIn], wSkip]] as [string, number[], number[]][]) : [])
		]);
	const cfgJson = (architecture: string, extra: Record<string, unknown> = {}) => ({
		architecture,
		d_in: dIn,
		d_sae: dSae,
		d_out: dOut,
		dtype: 'float32',
		device: 'cpu',
		apply_b_dec_to_input: false,
		normalize_activations: 'none',
		metadata: { sae_lens_version: '6.5.0', model_name: 'gpt2', hook_name: 'blocks.2.hook_mlp_in', hook_name_out: 'blocks.2.hook_mlp_out' },
		...extra
	});
	const folder = (cfg: unknown, skip: boolean, jump: boolean) => [
		{ name: 'cfg.json', buffer: text(cfg) },
		{ name: 'sae_weights.safetensors', buffer: weightsFile(skip, jump) }
	];

	for (const [arch, skip, jump] of [
		['transcoder', false, false],
		['skip_transcoder', true, false],
		['jumprelu_transcoder', false, true]
	] as const)
		it(`${arch}: the forward SAELens runs`, () => {
			const { cfg, out } = run(folder(cfgJson(arch), skip, jump));
			expect([cfg.hookName, cfg.hookNameOut, cfg.dOut, Boolean(cfg.skip)]).toEqual([
				'blocks.2.hook_mlp_in',
				'blocks.2.hook_mlp_out',
				dOut,
				skip
			]);
			expect(maxAbsDiff(out, expected(jump ? 'jumprelu' : 'relu', skip ? 'saelens' : 'none'))).toBeLessThan(1e-5);
		});

	it("SAELens's own names for the MLP input (ln2.hook_normalized, mlp.hook_in) are hook_mlp_in; a pre-6 cfg keeps hook_name_out", () => {
		const pre6 = {
			...cfgJson('jumprelu_transcoder'),
			metadata: undefined,
			hook_name: 'blocks.3.ln2.hook_normalized',
			hook_name_out: 'blocks.3.hook_mlp_out'
		};
		const { cfg } = run(folder(pre6, false, true));
		expect([cfg.hookName, cfg.hookNameOut]).toEqual(['blocks.3.hook_mlp_in', 'blocks.3.hook_mlp_out']);
		expect(cfg.conversions!.join(' ')).toMatch(/ln2\.hook_normalized.*hook_mlp_in/);
		const mw = cfgJson('transcoder', {
			metadata: { sae_lens_version: '6.5.0', hook_name: 'blocks.1.mlp.hook_in', hook_name_out: 'blocks.1.hook_mlp_out' }
		});
		expect(run(folder(mw, false, false)).cfg.hookName).toBe('blocks.1.hook_mlp_in');
	});

	it('refusals, each saying what to change', () => {
		expect(() => run(folder(cfgJson('skip_transcoder'), false, false))).toThrow(/skip transcoder.*no W_skip/);
		expect(() => run(folder(cfgJson('transcoder'), true, false))).toThrow(/W_skip.*"transcoder", which SAELens runs without it/);
		expect(() => run(folder(cfgJson('transcoder', { apply_b_dec_to_input: true }), false, false))).toThrow(/apply_b_dec_to_input/);
		expect(() => run(folder(cfgJson('transcoder', { normalize_activations: 'layer_norm' }), false, false))).toThrow(/normalises its input/);
		const noOut = cfgJson('transcoder', { metadata: { sae_lens_version: '6.5.0', hook_name: 'blocks.2.hook_mlp_in' } });
		expect(() => run(folder(noOut, false, false))).toThrow(/hook_name_out/);
		expect(() => run(folder(cfgJson('transcoder', { d_out: dIn }), false, false))).toThrow(/W_dec.*d_out 5/);
		const attnZ = cfgJson('transcoder', {
			metadata: { sae_lens_version: '6.5.0', hook_name: 'blocks.2.hook_mlp_in', hook_name_out: 'blocks.2.attn.hook_z' }
		});
		expect(() => run(folder(attnZ, false, false))).toThrow(/writes "blocks\.2\.attn\.hook_z"/);
	});

	it('a transcoder written as SAELens files (d_out, hook_name_out, architecture, W_skip) reads back to the same forward', () => {
		const { cfg, weights } = run(folder(cfgJson('skip_transcoder'), true, false));
		const { cfgJson: written, safetensors: bytes } = writeSaeLens(cfg, weights);
		const j = JSON.parse(written);
		expect([j.architecture, j.d_out, j.apply_b_dec_to_input, j.metadata.hook_name_out]).toEqual([
			'skip_transcoder',
			dOut,
			false,
			'blocks.2.hook_mlp_out'
		]);
		const back = run([
			{ name: 'cfg.json', buffer: new TextEncoder().encode(written).buffer as ArrayBuffer },
			{ name: 'sae_weights.safetensors', buffer: bytes.slice().buffer as ArrayBuffer }
		]);
		expect(maxAbsDiff(back.out, expected('relu', 'saelens'))).toBeLessThan(1e-5);
	});
});

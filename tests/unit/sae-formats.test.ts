// SAE files in each real format, laid out byte by byte as the format specs say (written here, not by
// the code under test), then read back; and the failures a user meets.
import { describe, expect, it } from 'vitest';
import { zipSync } from 'fflate';
import { readSaeLens, writeSaeLens, parseSaeLensConfig } from '../../src/lib/engine/sae/formats/saelens';
import { readGemmaScopeNpz, readGemmaScope2 } from '../../src/lib/engine/sae/formats/gemma-scope';
import { readSafetensors } from '../../src/lib/engine/sae/formats/safetensors';
import { checkSaeFitsModel } from '../../src/lib/engine/sae/validate';
import { Sae } from '../../src/lib/engine/sae/sae';

const dIn = 3;
const dSae = 4;
// Small, readable weights. W_enc [dIn, dSae], W_dec [dSae, dIn].
const W_enc = [1, 0, 0, 1, 0, 1, 0, 1, 0, 0, 1, -1];
const W_dec = [1, 0, 0, 0, 1, 0, 0, 0, 1, 0.5, 0.5, 0];
const b_enc = [0, -0.5, 0.1, 0];
const b_dec = [0.1, 0.2, 0.3];
const threshold = [0.5, 2, 2, 0.1]; // feature 1 (pre 1.5) is under its threshold

/** safetensors by the spec: u64 header length, JSON header, raw little-endian data. */
function safetensorsBytes(tensors: [string, string, number[], number[]][]): ArrayBuffer {
	const header: Record<string, unknown> = {};
	const datas: Uint8Array[] = [];
	let off = 0;
	for (const [name, dtype, shape, values] of tensors) {
		const data = dtype === 'F32' ? new Uint8Array(Float32Array.from(values).buffer) : f16Bytes(values);
		header[name] = { dtype, shape, data_offsets: [off, off + data.length] };
		off += data.length;
		datas.push(data);
	}
	const json = new TextEncoder().encode(JSON.stringify(header));
	const out = new Uint8Array(8 + json.length + off);
	new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
	out.set(json, 8);
	let p = 8 + json.length;
	for (const d of datas) out.set(d, (p += d.length) - d.length);
	return out.buffer;
}

/** IEEE half floats of values that are exact in fp16 (sign, 5-bit exponent, 10-bit mantissa). */
function f16Bytes(values: number[]): Uint8Array {
	const out = new Uint8Array(values.length * 2);
	const dv = new DataView(out.buffer);
	values.forEach((v, i) => {
		let h = 0;
		if (v !== 0) {
			const s = v < 0 ? 0x8000 : 0;
			const a = Math.abs(v);
			const e = Math.floor(Math.log2(a));
			h = s | ((e + 15) << 10) | Math.round((a / 2 ** e - 1) * 1024);
		}
		dv.setUint16(2 * i, h, true);
	});
	return out;
}

/** .npy version 1.0: magic, version, u16 header length, a padded dict header, data. */
function npy(shape: number[], values: number[]): Uint8Array {
	let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
	header += ' '.repeat(63 - ((10 + header.length) % 64)) + '\n';
	const out = new Uint8Array(10 + header.length + values.length * 4);
	out.set([0x93, ...new TextEncoder().encode('NUMPY'), 1, 0]);
	new DataView(out.buffer).setUint16(8, header.length, true);
	out.set(new TextEncoder().encode(header), 10);
	out.set(new Uint8Array(Float32Array.from(values).buffer), 10 + header.length);
	return out;
}

const saelensTensors: [string, string, number[], number[]][] = [
	['W_enc', 'F32', [dIn, dSae], W_enc],
	['W_dec', 'F32', [dSae, dIn], W_dec],
	['b_enc', 'F32', [dSae], b_enc],
	['b_dec', 'F32', [dIn], b_dec]
];

describe('SAELens folders', () => {
	it('reads the current cfg keys', () => {
		const cfg = JSON.stringify({
			architecture: 'standard',
			d_in: dIn,
			d_sae: dSae,
			apply_b_dec_to_input: true,
			normalize_activations: 'none',
			dtype: 'float32',
			metadata: { hook_name: 'blocks.1.hook_resid_post', model_name: 'stories260K' }
		});
		const { cfg: c, weights } = readSaeLens(cfg, safetensorsBytes(saelensTensors));
		expect(c).toMatchObject({
			architecture: 'relu',
			dIn,
			dSae,
			hookName: 'blocks.1.hook_resid_post',
			applyBDecToInput: true,
			centerInput: false
		});
		expect([...weights.wEnc]).toEqual(W_enc);
		expect([...weights.bDec]).toEqual(b_dec.map(Math.fround));
	});

	it('reads the older keys of jbloom/GPT2-Small-SAEs-Reformatted (hook_point, hook_point_layer, no architecture)', () => {
		const cfg = {
			model_name: 'gpt2-small',
			hook_point: 'blocks.8.hook_resid_pre',
			hook_point_layer: 8,
			d_in: 768,
			d_sae: 24576,
			expansion_factor: 32,
			dtype: 'torch.float32',
			normalize_activations: false
		};
		const c = parseSaeLensConfig(JSON.stringify(cfg));
		expect(c).toMatchObject({
			architecture: 'relu',
			hookName: 'blocks.8.hook_resid_pre',
			dIn: 768,
			dSae: 24576,
			applyBDecToInput: true,
			normalizeActivations: 'none'
		});
		expect(c.centerInput).toBe(true); // GPT-2 through TransformerLens: centred writing weights
	});

	it('reads TopK (k at top level or in activation_fn_kwargs) and fp16 weights', () => {
		const topk = parseSaeLensConfig(
			JSON.stringify({
				d_in: dIn,
				d_sae: dSae,
				hook_name: 'blocks.0.hook_resid_pre',
				activation_fn_str: 'topk',
				activation_fn_kwargs: { k: 2 }
			})
		);
		expect(topk).toMatchObject({ architecture: 'topk', k: 2 });
		const half = safetensorsBytes(saelensTensors.map(([n, , s, v]) => [n, 'F16', s, v] as [string, string, number[], number[]]));
		const t = readSafetensors(half, 'half.safetensors');
		expect([...t.get('W_dec')!.data]).toEqual(W_dec);
	});

	it('writes the SAELens format that reads back identically', () => {
		const cfg = JSON.stringify({
			architecture: 'jumprelu',
			d_in: dIn,
			d_sae: dSae,
			apply_b_dec_to_input: false,
			hook_name: 'blocks.2.hook_resid_pre',
			model_name: 'stories260K'
		});
		const a = readSaeLens(cfg, safetensorsBytes([...saelensTensors, ['threshold', 'F32', [dSae], threshold]]));
		const written = writeSaeLens(a.cfg, a.weights);
		const b = readSaeLens(written.cfgJson, written.safetensors.buffer as ArrayBuffer);
		expect(b.cfg).toMatchObject({
			architecture: 'jumprelu',
			dIn,
			dSae,
			hookName: 'blocks.2.hook_resid_pre',
			applyBDecToInput: false,
			centerInput: false
		});
		expect(b.weights).toEqual(a.weights);
		expect(JSON.parse(written.cfgJson).metadata.hook_name).toBe('blocks.2.hook_resid_pre');
	});

	it('refuses a truncated safetensors header, a missing tensor and wrong shapes, naming them', () => {
		const good = safetensorsBytes(saelensTensors);
		expect(() => readSafetensors(good.slice(0, 40), 'w.safetensors')).toThrow(
			/w\.safetensors is not a readable safetensors file: its header claims/
		);
		expect(() => readSafetensors(good.slice(0, good.byteLength - 8), 'w.safetensors')).toThrow(/"b_dec" ends at byte .* \(truncated\)/);
		const cfg = JSON.stringify({ d_in: dIn, d_sae: dSae, hook_name: 'blocks.0.hook_resid_pre' });
		expect(() => readSaeLens(cfg, safetensorsBytes(saelensTensors.slice(1)))).toThrow(/has no tensor "W_enc"/);
		const wrong = JSON.stringify({ d_in: dIn, d_sae: 5, hook_name: 'blocks.0.hook_resid_pre' });
		expect(() => readSaeLens(wrong, good)).toThrow(/"W_enc" has shape \[3, 4\], but d_in 3 and d_sae 5 need \[3, 5\]/);
	});
});

describe('Gemma Scope and Gemma Scope 2', () => {
	const files = {
		'W_enc.npy': npy([dIn, dSae], W_enc),
		'W_dec.npy': npy([dSae, dIn], W_dec),
		'b_enc.npy': npy([dSae], b_enc),
		'b_dec.npy': npy([dIn], b_dec),
		'threshold.npy': npy([dSae], threshold)
	};
	for (const [how, level] of [
		['stored', 0],
		['deflated', 6]
	] as const) {
		it(`reads params.npz, ${how}, with the layer from its release path`, () => {
			const zip = zipSync(files, { level });
			const { cfg, weights } = readGemmaScopeNpz(zip.buffer as ArrayBuffer, { path: 'layer_12/width_16k/average_l0_82/params.npz' });
			expect(cfg).toMatchObject({ architecture: 'jumprelu', dIn, dSae, hookName: 'blocks.12.hook_resid_post', applyBDecToInput: false });
			expect([...weights.threshold!]).toEqual(threshold.map(Math.fround));
		});
	}

	it('reads params.safetensors with lowercase keys and config.json', () => {
		const buf = safetensorsBytes([
			['w_enc', 'F32', [dIn, dSae], W_enc],
			['w_dec', 'F32', [dSae, dIn], W_dec],
			['b_enc', 'F32', [dSae], b_enc],
			['b_dec', 'F32', [dIn], b_dec],
			['threshold', 'F32', [dSae], threshold]
		]);
		const { cfg, weights } = readGemmaScope2(
			JSON.stringify({ hf_hook_point_in: 'model.layers.5.output', model_name: 'google/gemma-3-270m-it' }),
			buf
		);
		expect(cfg).toMatchObject({ architecture: 'jumprelu', hookName: 'blocks.5.hook_resid_post', modelName: 'google/gemma-3-270m-it' });
		expect([...weights.wDec]).toEqual(W_dec.map(Math.fround));
	});
});

describe('an SAE against the model it runs on', () => {
	const cfg = parseSaeLensConfig(
		JSON.stringify({ d_in: 768, d_sae: 24576, hook_name: 'blocks.8.hook_resid_pre', model_name: 'gpt2-small' })
	);
	it('a d_in that is not the model width is refused with both widths and what to do', () => {
		expect(() =>
			checkSaeFitsModel({ ...cfg, hookName: 'blocks.2.hook_resid_pre' }, { name: 'stories260K', nLayers: 5, dModel: 64 })
		).toThrow(/width 768 \(d_in\), but stories260K's residual stream at blocks\.2\.hook_resid_pre has width 64/);
	});
	it('a hook the model lacks is refused', () => {
		expect(() => checkSaeFitsModel(cfg, { name: 'stories260K', nLayers: 5, dModel: 768 })).toThrow(
			/reads "blocks\.8\.hook_resid_pre", which stories260K does not have/
		);
	});
});

describe('the SAE reference math, checked by hand', () => {
	const weights = {
		wEnc: Float32Array.from(W_enc),
		wDec: Float32Array.from(W_dec),
		bEnc: Float32Array.from(b_enc),
		bDec: Float32Array.from(b_dec),
		threshold: Float32Array.from(threshold)
	};
	const base = {
		dIn,
		dSae,
		hookName: 'blocks.0.hook_resid_pre',
		applyBDecToInput: false,
		normalizeActivations: 'none' as const,
		centerInput: false,
		format: 'test',
		dtype: 'F32',
		name: 't'
	};
	const x = Float32Array.from([1, 2, 3]);
	// pre = x · W_enc + b_enc = [1, 2-0.5, 3+0.1, 1+2-3] = [1, 1.5, 3.1, 0]
	it('ReLU', () =>
		expect([...Sae.create({ ...base, architecture: 'relu' }, weights).encode(x, 1)].map((v) => +v.toFixed(5))).toEqual([1, 1.5, 3.1, 0]));
	it('JumpReLU zeroes what is under its threshold', () =>
		expect([...Sae.create({ ...base, architecture: 'jumprelu' }, weights).encode(x, 1)].map((v) => +v.toFixed(5))).toEqual([1, 0, 3.1, 0]));
	it('TopK keeps the k largest', () =>
		expect([...Sae.create({ ...base, architecture: 'topk', k: 2 }, weights).encode(x, 1)].map((v) => +v.toFixed(5))).toEqual([
			0, 1.5, 3.1, 0
		]));
	it('applyBDecToInput and centring change the input as SAELens does', () => {
		// centred x = [-1, 0, 1]; minus b_dec = [-1.1, -0.2, 0.7]; pre = [-1.1, -0.7, 0.8, -1.0]
		const sae = Sae.create({ ...base, architecture: 'relu', applyBDecToInput: true, centerInput: true }, weights);
		expect([...sae.encode(x, 1)].map((v) => +v.toFixed(5))).toEqual([0, 0, 0.8, 0]);
		// decode: b_dec + 0.8 · W_dec[2] = [0.1, 0.2, 1.1]
		expect([...sae.decode(sae.encode(x, 1), 1)].map((v) => +v.toFixed(5))).toEqual([0.1, 0.2, 1.1]);
	});
});

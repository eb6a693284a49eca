// SAELens's file formats and formulas written out in plain TypeScript from SAELens's source, with no
// Loupe code: what the conformance tests build SAE folders with and compute expected encodings by.
//   safetensors: u64 header length, JSON header, raw little-endian F32 data (safetensors spec)
//   cfg defaulting: loading/pretrained_sae_loaders.py handle_config_defaulting / handle_pre_6_0_config
//   encode/decode: saes/sae.py process_sae_in + _setup_activation_normalization, standard_sae.py,
//     topk_sae.py (TopK, rescale_acts_by_decoder_norm), jumprelu_sae.py

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
export type State = Record<string, { shape: number[]; data: number[] }>;

export function safetensorsBytes(tensors: State): ArrayBuffer {
	const header: Json = {};
	let off = 0;
	for (const [name, t] of Object.entries(tensors)) {
		header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [off, off + 4 * t.data.length] };
		off += 4 * t.data.length;
	}
	const json = new TextEncoder().encode(JSON.stringify(header));
	const out = new Uint8Array(8 + json.length + off);
	const dv = new DataView(out.buffer);
	dv.setBigUint64(0, BigInt(json.length), true);
	out.set(json, 8);
	let p = 8 + json.length;
	for (const t of Object.values(tensors)) for (const v of t.data) (dv.setFloat32(p, v, true), (p += 4));
	return out.buffer;
}

export function parseSafetensors(buf: ArrayBuffer | Uint8Array): State {
	const bytes = buf instanceof Uint8Array ? buf : new Uint8Array(buf);
	const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
	const n = Number(dv.getBigUint64(0, true));
	const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
	const out: State = {};
	for (const [k, t] of Object.entries<Json>(header)) {
		if (k === '__metadata__') continue;
		if (t.dtype !== 'F32') throw new Error(`test reader: ${k} is ${t.dtype}`);
		const data: number[] = [];
		for (let p = t.data_offsets[0]; p < t.data_offsets[1]; p += 4) data.push(dv.getFloat32(8 + n + p, true));
		out[k] = { shape: t.shape, data };
	}
	return out;
}

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

/** handle_config_defaulting: no version (top level or metadata) or < 6 → metadata rebuilt from top-level keys. */
export function saeLensDefaulting(cfg: Json): Json {
	const v = cfg.sae_lens_version || cfg.metadata?.sae_lens_version;
	if (v && Number(String(v).split('.')[0]) >= 6) return cfg;
	const n: Json = {};
	for (const [k, val] of Object.entries(cfg))
		n[{ hook_point: 'hook_name', hook_point_head_index: 'hook_head_index', activation_fn_str: 'activation_fn' }[k] ?? k] = val;
	n.architecture ??= 'standard';
	n.apply_b_dec_to_input ??= true;
	if (n.activation_fn === 'topk' && n.activation_fn_kwargs?.k != null) ((n.architecture = 'topk'), (n.k = n.activation_fn_kwargs.k));
	if (typeof n.normalize_activations === 'boolean') n.normalize_activations = n.normalize_activations ? 'expected_average_only_in' : 'none';
	n.normalize_activations ??= 'none';
	n.metadata = Object.fromEntries(LLM_METADATA_KEYS.filter((k) => k in n).map((k) => [k, n[k]]));
	return n;
}

const row = (m: { shape: number[]; data: number[] }, r: number) => m.data.slice(r * m.shape[1], (r + 1) * m.shape[1]);
const norm = (v: number[]) => Math.sqrt(v.reduce((a, b) => a + b * b, 0));

/** SAELens's encode and decode of one token x for a defaulted cfg and its state dict. */
export function saeLensForward(cfg: Json, s: State, x: number[]): { acts: number[]; recon: number[] } {
	const d = cfg.d_in;
	const n = cfg.d_sae;
	let xin = x.slice();
	let mu = 0,
		std = 1,
		coeff = 1;
	if (cfg.normalize_activations === 'layer_norm') {
		mu = xin.reduce((a, b) => a + b, 0) / d;
		xin = xin.map((v) => v - mu);
		std = Math.sqrt(xin.reduce((a, b) => a + b * b, 0) / (d - 1)); // torch.std: unbiased
		xin = xin.map((v) => v / (std + 1e-5));
	} else if (cfg.normalize_activations === 'constant_norm_rescale') {
		coeff = Math.sqrt(d) / norm(xin);
		xin = xin.map((v) => v * coeff);
	}
	if (cfg.apply_b_dec_to_input ?? true) xin = xin.map((v, i) => v - s.b_dec.data[i]);
	const decNorms = Array.from({ length: n }, (_, f) => norm(row(s.W_dec, f)));
	let pre = Array.from({ length: n }, (_, f) => s.b_enc.data[f] + xin.reduce((a, v, i) => a + v * s.W_enc.data[i * n + f], 0));
	const rescale = cfg.architecture === 'topk' && cfg.rescale_acts_by_decoder_norm;
	if (rescale) pre = pre.map((v, f) => v * decNorms[f]);
	let acts: number[];
	if (cfg.architecture === 'topk') {
		const keep = new Set(
			pre
				.map((v, f) => [v, f])
				.sort((a, b) => b[0] - a[0] || a[1] - b[1])
				.slice(0, cfg.k ?? 100)
				.map(([, f]) => f)
		);
		acts = pre.map((v, f) => (keep.has(f) ? Math.max(0, v) : 0));
	} else if (cfg.architecture === 'jumprelu') acts = pre.map((v, f) => (v > s.threshold.data[f] ? Math.max(0, v) : 0));
	else acts = pre.map((v) => Math.max(0, v));
	const a = rescale ? acts.map((v, f) => v / decNorms[f]) : acts;
	let recon = Array.from({ length: d }, (_, i) => s.b_dec.data[i] + a.reduce((acc, v, f) => acc + v * s.W_dec.data[f * d + i], 0));
	if (cfg.normalize_activations === 'layer_norm') recon = recon.map((v) => v * std + mu);
	else if (cfg.normalize_activations === 'constant_norm_rescale') recon = recon.map((v) => v / coeff);
	return { acts, recon };
}

/** A small seeded generator (mulberry32), so fixtures are the same every run. */
export function rng(seed: number): () => number {
	let a = seed >>> 0;
	return () => {
		a = (a + 0x6d2b79f5) >>> 0;
		let t = a;
		t = Math.imul(t ^ (t >>> 15), t | 1);
		t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
		return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
	};
}

/** Random weights of an SAE folder (W_dec rows deliberately not unit norm). */
export function randomState(d: number, n: number, seed: number, extra: { threshold?: boolean } = {}): State {
	const r = rng(seed);
	const m = (len: number, scale: number) => Array.from({ length: len }, () => Math.fround((r() - 0.5) * 2 * scale));
	const s: State = {
		W_enc: { shape: [d, n], data: m(d * n, 0.6) },
		W_dec: {
			shape: [n, d],
			data: Array.from({ length: n * d }, (_, i) => Math.fround((r() - 0.5) * (0.3 + (2 * ((Math.floor(i / d) * 7) % 5)) / 5)))
		},
		b_enc: { shape: [n], data: m(n, 0.2) },
		b_dec: { shape: [d], data: m(d, 0.3) }
	};
	if (extra.threshold) s.threshold = { shape: [n], data: Array.from({ length: n }, () => Math.fround(0.05 + 0.4 * r())) };
	return s;
}

export function randomTokens(d: number, tokens: number, seed: number, scale = 3): number[][] {
	const r = rng(seed);
	return Array.from({ length: tokens }, () => Array.from({ length: d }, () => Math.fround((r() - 0.5) * 2 * scale + 0.7)));
}

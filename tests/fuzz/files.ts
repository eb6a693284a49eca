/**
 * Valid files of each binary format, written here byte by byte from the formats' specs (not by
 * Loupe's writers), for the fuzz suites to mutate: safetensors, .npy, llama2.c checkpoints (legacy
 * and version 1) and tokenizers.
 */
import type { Field } from './bytes';

const enc = new TextEncoder();

/** safetensors: u64 little-endian header length, the JSON header, the data. `headerLen` overrides the length field. */
export function safetensorsFile(header: unknown, data: Uint8Array, headerText = JSON.stringify(header), headerLen?: number): Uint8Array {
	const head = enc.encode(headerText);
	const out = new Uint8Array(8 + head.length + data.length);
	new DataView(out.buffer).setBigUint64(0, BigInt(headerLen ?? head.length), true);
	out.set(head, 8);
	out.set(data, 8 + head.length);
	return out;
}

/** A small SAELens-shaped header (W_enc [2,3] F32, b_dec [2] F16, threshold [3] BF16) and its data. */
export function smallSafetensors(): { header: Record<string, unknown>; data: Uint8Array } {
	const header = {
		__metadata__: { format: 'pt' },
		W_enc: { dtype: 'F32', shape: [2, 3], data_offsets: [0, 24] },
		b_dec: { dtype: 'F16', shape: [2], data_offsets: [24, 28] },
		threshold: { dtype: 'BF16', shape: [3], data_offsets: [28, 34] },
		x64: { dtype: 'F64', shape: [1], data_offsets: [34, 42] }
	};
	const data = new Uint8Array(42);
	const dv = new DataView(data.buffer);
	for (let i = 0; i < 6; i++) dv.setFloat32(4 * i, i - 2.5, true);
	dv.setUint16(24, 0x3c00, true); // 1.0
	dv.setUint16(26, 0xc000, true); // -2.0
	for (let i = 0; i < 3; i++) dv.setUint16(28 + 2 * i, 0x3f80, true); // 1.0 in bf16
	dv.setFloat64(34, Math.PI, true);
	return { header, data };
}

/** .npy version `major` (1: u16 header length at 8; 2: u32), '<f4' C order, shape `shape`. */
export function npyFile(shape: number[], values: number[], major = 1, descr = '<f4'): { bytes: Uint8Array; fields: Field[] } {
	let dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
	const pre = major === 1 ? 10 : 12;
	dict += ' '.repeat((64 - ((pre + dict.length + 1) % 64)) % 64) + '\n';
	const head = enc.encode(dict);
	const out = new Uint8Array(pre + head.length + 4 * values.length);
	out.set([0x93, ...enc.encode('NUMPY'), major, 0]);
	const dv = new DataView(out.buffer);
	if (major === 1) dv.setUint16(8, head.length, true);
	else dv.setUint32(8, head.length, true);
	out.set(head, pre);
	values.forEach((v, i) => dv.setFloat32(pre + head.length + 4 * i, v, true));
	return {
		bytes: out,
		fields: [
			{ name: 'major version', at: 6, kind: 'u8' },
			major === 1 ? { name: 'header length', at: 8, kind: 'u16' } : { name: 'header length', at: 8, kind: 'u32' }
		]
	};
}

export interface TinyLlamaShape {
	dim: number;
	hidden: number;
	layers: number;
	heads: number;
	kvHeads: number;
	vocab: number;
	seqLen: number;
	shared: boolean;
}

export const tinyLlama: TinyLlamaShape = { dim: 8, hidden: 12, layers: 2, heads: 2, kvHeads: 1, vocab: 10, seqLen: 6, shared: false };

/** llama2.c's float count, by export.py's write order (legacy adds freq_cis, seq_len × head_size). */
function floats(s: TinyLlamaShape, legacy: boolean): number {
	const kv = (s.dim * s.kvHeads) / s.heads;
	const perLayer = 2 * s.dim + 2 * s.dim * s.dim + 2 * kv * s.dim + 3 * s.dim * s.hidden;
	return s.vocab * s.dim + s.layers * perLayer + s.dim + (legacy ? (s.seqLen * s.dim) / s.heads : 0) + (s.shared ? 0 : s.vocab * s.dim);
}

/** A llama2.c checkpoint: legacy (7 int32, negative vocab = unshared classifier) or version 1 ("ak42", 256-byte header). */
export function llama2cFile(s: TinyLlamaShape, legacy: boolean): { bytes: Uint8Array; fields: Field[] } {
	const head = legacy ? 28 : 256;
	const out = new Uint8Array(head + 4 * floats(s, legacy));
	const dv = new DataView(out.buffer);
	const ints = [s.dim, s.hidden, s.layers, s.heads, s.kvHeads, legacy && !s.shared ? -s.vocab : s.vocab, s.seqLen];
	const base = legacy ? 0 : 8;
	if (!legacy) {
		dv.setUint32(0, 0x616b3432, true);
		dv.setInt32(4, 1, true);
		dv.setUint8(36, s.shared ? 1 : 0);
	}
	ints.forEach((v, i) => dv.setInt32(base + 4 * i, v, true));
	for (let p = head; p < out.length; p += 4) dv.setFloat32(p, Math.sin(p), true);
	const names = ['dim', 'hidden_dim', 'n_layers', 'n_heads', 'n_kv_heads', 'vocab_size', 'seq_len'];
	const fields: Field[] = names.map((name, i) => ({ name, at: base + 4 * i, kind: 'i32' }));
	if (!legacy)
		fields.push(
			{ name: 'magic', at: 0, kind: 'u32' },
			{ name: 'version', at: 4, kind: 'i32' },
			{ name: 'shared_classifier', at: 36, kind: 'u8' }
		);
	return { bytes: out, fields };
}

/** Where each token's length sits in a llama2.c tokenizer file (i32 max_token_length, then score f32, len i32, bytes). */
export function tokenizerFields(bytes: Uint8Array, vocab: number): Field[] {
	const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
	const fields: Field[] = [{ name: 'max_token_length', at: 0, kind: 'i32' }];
	let p = 4;
	for (let i = 0; i < vocab && p + 8 <= bytes.length; i++) {
		fields.push({ name: `score ${i}`, at: p, kind: 'f32' }, { name: `length ${i}`, at: p + 4, kind: 'i32' });
		p += 8 + dv.getInt32(p + 4, true);
	}
	return fields;
}

const u32At = (b: Uint8Array, at: number) => new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(at, true);

/** The fields of a zip that say where and how big things are: end record, central directory, local headers. */
export function zipFields(zip: Uint8Array): Field[] {
	const fields: Field[] = [];
	for (let p = 0; p + 4 <= zip.length; p++) {
		const sig = u32At(zip, p);
		if (sig === 0x06054b50)
			fields.push(
				{ name: 'EOCD entries on disk', at: p + 8, kind: 'u16' },
				{ name: 'EOCD entries', at: p + 10, kind: 'u16' },
				{ name: 'EOCD directory size', at: p + 12, kind: 'u32' },
				{ name: 'EOCD directory offset', at: p + 16, kind: 'u32' }
			);
		else if (sig === 0x02014b50)
			fields.push(
				{ name: 'CD method', at: p + 10, kind: 'u16' },
				{ name: 'CD compressed size', at: p + 20, kind: 'u32' },
				{ name: 'CD uncompressed size', at: p + 24, kind: 'u32' },
				{ name: 'CD name length', at: p + 28, kind: 'u16' },
				{ name: 'CD extra length', at: p + 30, kind: 'u16' },
				{ name: 'CD local header offset', at: p + 42, kind: 'u32' }
			);
		else if (sig === 0x04034b50)
			fields.push({ name: 'LH name length', at: p + 26, kind: 'u16' }, { name: 'LH extra length', at: p + 28, kind: 'u16' });
	}
	return fields;
}

/** A zip whose end record points at a zip64 end record claiming `entries` files (fflate loops over that count). */
export function zip64Claiming(entries: number): Uint8Array {
	const out = new Uint8Array(56 + 20 + 22);
	const dv = new DataView(out.buffer);
	dv.setUint32(0, 0x06064b50, true); // zip64 end of central directory record
	dv.setBigUint64(24, BigInt(entries), true); // entries on this disk
	dv.setBigUint64(32, BigInt(entries), true); // entries (fflate reads the low word at +32)
	dv.setBigUint64(48, 1000n, true); // directory offset: past the end, where every entry reads as zeros
	dv.setUint32(56, 0x07064b50, true); // zip64 locator
	dv.setBigUint64(56 + 8, 0n, true); // where the zip64 record is
	dv.setUint32(76, 0x06054b50, true); // end of central directory
	dv.setUint16(76 + 8, 0xffff, true);
	dv.setUint16(76 + 10, 0xffff, true);
	dv.setUint32(76 + 16, 0xffffffff, true);
	return out;
}

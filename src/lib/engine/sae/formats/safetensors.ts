/**
 * safetensors: an 8-byte little-endian header length N, N bytes of JSON
 * ({name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?}), then the raw data.
 * Reads float tensors (F32, F16, BF16, F64) widened to float32; checks every offset and size.
 */
import { LoupeError } from '../../errors';
import { dtypeBytes, widen, type FloatDtype, type NamedTensor } from './tensors';

export function readSafetensors(buf: ArrayBuffer, name: string): Map<string, NamedTensor> {
	const bad = (why: string) =>
		new LoupeError('not-an-sae', `${name} is not a readable safetensors file: ${why}.`, 'The file may be truncated or of another format; download it again or choose the right file.');
	if (buf.byteLength < 8) throw bad('it is shorter than its 8-byte header length');
	const dv = new DataView(buf);
	const n = Number(dv.getBigUint64(0, true));
	if (n <= 0 || n > 100_000_000 || 8 + n > buf.byteLength) throw bad(`its header claims ${n.toLocaleString('en')} bytes but the file has ${buf.byteLength.toLocaleString('en')}`);
	let header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
	try {
		header = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 8, n)));
	} catch {
		throw bad('its JSON header does not parse (the file is cut short or corrupt)');
	}
	const bytes = new Uint8Array(buf, 8 + n);
	const out = new Map<string, NamedTensor>();
	for (const [key, t] of Object.entries(header)) {
		if (key === '__metadata__') continue;
		if (!(t.dtype in dtypeBytes)) throw bad(`tensor "${key}" has dtype ${t.dtype}; Loupe reads F32, F16, BF16 and F64`);
		const dtype = t.dtype as FloatDtype;
		const count = t.shape.reduce((a, b) => a * b, 1);
		const [begin, end] = t.data_offsets;
		if (end - begin !== count * dtypeBytes[dtype])
			throw bad(`tensor "${key}" has shape [${t.shape}] (${count * dtypeBytes[dtype]} bytes of ${dtype}) but ${end - begin} bytes of data`);
		if (end > bytes.byteLength)
			throw bad(`tensor "${key}" ends at byte ${end.toLocaleString('en')} of the data, but there are only ${bytes.byteLength.toLocaleString('en')} (truncated)`);
		out.set(key, { dtype, shape: t.shape, data: widen(bytes, begin, count, dtype) });
	}
	return out;
}

/** Writes float32 tensors as safetensors (SAELens's weight file format). */
export function writeSafetensors(tensors: Record<string, { shape: number[]; data: Float32Array }>, metadata?: Record<string, string>): Uint8Array {
	const header: Record<string, unknown> = {};
	if (metadata) header.__metadata__ = metadata;
	let offset = 0;
	for (const [k, t] of Object.entries(tensors)) {
		header[k] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
		offset += t.data.byteLength;
	}
	let json = JSON.stringify(header);
	json += ' '.repeat((8 - ((8 + json.length) % 8)) % 8); // keep the data 8-byte aligned
	const head = new TextEncoder().encode(json);
	const out = new Uint8Array(8 + head.length + offset);
	new DataView(out.buffer).setBigUint64(0, BigInt(head.length), true);
	out.set(head, 8);
	let p = 8 + head.length;
	for (const t of Object.values(tensors)) {
		out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), p);
		p += t.data.byteLength;
	}
	return out;
}

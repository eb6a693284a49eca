/**
 * safetensors: an 8-byte little-endian header length N, N bytes of JSON
 * ({name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?}), then the raw data.
 * Reads float tensors (F32, F16, BF16, F64) widened to float32; checks every offset and size.
 */
import { LoupeError } from '../../errors';
import { dtypeBytes, widen, type FloatDtype, type NamedTensor } from './tensors';

export function readSafetensors(buf: ArrayBuffer, name: string): Map<string, NamedTensor> {
	const bad = (why: string) =>
		new LoupeError(
			'not-an-sae',
			`${name} is not a readable safetensors file: ${why}.`,
			'The file may be truncated or of another format; download it again or choose the right file.'
		);
	if (buf.byteLength < 8) throw bad('it is shorter than its 8-byte header length');
	const dv = new DataView(buf);
	const n = Number(dv.getBigUint64(0, true));
	if (n <= 0 || n > 100_000_000 || 8 + n > buf.byteLength)
		throw bad(`its header claims ${n.toLocaleString('en')} bytes but the file has ${buf.byteLength.toLocaleString('en')}`);
	let header: unknown;
	try {
		header = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 8, n)));
	} catch {
		throw bad('its JSON header does not parse (the file is cut short or corrupt)');
	}
	// Every field is checked before it is used: the header is the file's word, not a fact. Values go
	// into messages through JSON.stringify, which cannot throw on objects whose toString is not a function.
	if (!header || typeof header !== 'object' || Array.isArray(header))
		throw bad(`its header ${show(header)} is not a JSON object of tensors`);
	const bytes = new Uint8Array(buf, 8 + n);
	const out = new Map<string, NamedTensor>();
	for (const [key, t] of Object.entries(header as Record<string, unknown>)) {
		if (key === '__metadata__') continue;
		if (!t || typeof t !== 'object' || Array.isArray(t)) throw bad(`tensor "${key}" is not an object with dtype, shape and data_offsets`);
		const { dtype: d, shape, data_offsets: offsets } = t as Record<string, unknown>;
		if (typeof d !== 'string' || !Object.hasOwn(dtypeBytes, d))
			throw bad(`tensor "${key}" has dtype ${show(d)}; Loupe reads F32, F16, BF16 and F64`);
		const dtype = d as FloatDtype;
		if (!Array.isArray(shape) || !shape.every(isSize))
			throw bad(`tensor "${key}" has shape ${show(shape)}, which is not a list of sizes (non-negative integers)`);
		if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isSize) || offsets[0] > offsets[1])
			throw bad(`tensor "${key}" has data_offsets ${show(offsets)}; they must be two byte offsets [begin, end] with begin <= end`);
		const count = shape.reduce((a: number, b: number) => a * b, 1);
		const [begin, end] = offsets as [number, number];
		if (end - begin !== count * dtypeBytes[dtype])
			throw bad(
				`tensor "${key}" has shape [${shape}] (${(count * dtypeBytes[dtype]).toLocaleString('en')} bytes of ${dtype}) but ${(end - begin).toLocaleString('en')} bytes of data`
			);
		// Checked before widen() allocates `count` floats: a header that claims 10 GB is refused here.
		if (end > bytes.byteLength)
			throw bad(
				`tensor "${key}" ends at byte ${end.toLocaleString('en')} of the data, but there are only ${bytes.byteLength.toLocaleString('en')} (truncated)`
			);
		out.set(key, { dtype, shape, data: widen(bytes, begin, count, dtype) });
	}
	return out;
}

const isSize = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

/** A header value as it reads in a message (never throws, never "[object Object]"). */
function show(v: unknown): string {
	const s = JSON.stringify(v) ?? String(v);
	return s.length > 80 ? s.slice(0, 77) + '...' : s;
}

/** Writes float32 tensors as safetensors (SAELens's weight file format). */
export function writeSafetensors(
	tensors: Record<string, { shape: number[]; data: Float32Array }>,
	metadata?: Record<string, string>
): Uint8Array {
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

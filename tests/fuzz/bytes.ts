/**
 * Structure-aware byte mutations: a valid file (built by the test) and the fields its format
 * defines (where a length, count or offset sits), mutated one at a time the ways a broken download
 * or a hostile file does: a field set to an edge value (0, −1, 2³¹−1, the file's own length ± 1, a
 * size far past the end), the file truncated anywhere, extended with junk, one byte changed, or
 * random bytes from the start.
 */
import fc from 'fast-check';

/** A numeric field of the format: its byte offset and how it is stored. */
export interface Field {
	name: string;
	at: number;
	kind: 'i32' | 'u32' | 'u16' | 'u64' | 'f32' | 'u8';
}

export interface Mutated {
	bytes: Uint8Array;
	/** What was done, for the counterexample's report. */
	how: string;
}

/** Values that break parsers: edges of the integer types and sizes relative to the file's length. */
export function edgeInt(len: number): fc.Arbitrary<number> {
	return fc.oneof(
		fc.constantFrom(
			0,
			1,
			-1,
			2,
			3,
			7,
			8,
			255,
			256,
			1023,
			1024,
			1025,
			65535,
			65536,
			2 ** 24,
			2 ** 31 - 1,
			-(2 ** 31),
			2 ** 32 - 1,
			2 ** 32,
			2 ** 53 - 1,
			10e9
		),
		fc.constantFrom(len - 1, len, len + 1, len * 2, Math.floor(len / 2), Math.floor(len / 4), len + 8),
		fc.integer(),
		fc.integer({ min: 0, max: 64 })
	);
}

export function writeField(bytes: Uint8Array, f: Field, v: number): void {
	const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
	if (f.at + { i32: 4, u32: 4, u16: 2, u64: 8, f32: 4, u8: 1 }[f.kind] > bytes.length) return;
	const n = Math.trunc(v);
	if (f.kind === 'i32') dv.setInt32(f.at, n | 0, true);
	else if (f.kind === 'u32') dv.setUint32(f.at, n >>> 0, true);
	else if (f.kind === 'u16') dv.setUint16(f.at, n & 0xffff, true);
	else if (f.kind === 'u8') dv.setUint8(f.at, n & 0xff);
	else if (f.kind === 'f32') dv.setFloat32(f.at, v, true);
	else dv.setBigUint64(f.at, BigInt.asUintN(64, BigInt(Number.isSafeInteger(n) ? n : 2 ** 53)), true); // −1 → 2⁶⁴−1
}

const concat = (a: Uint8Array, b: Uint8Array) => {
	const out = new Uint8Array(a.length + b.length);
	out.set(a);
	out.set(b, a.length);
	return out;
};

/** Mutations of `base`, one per case, over its `fields`; `extra` adds format-specific ones. */
export function mutatedBytes(file: Uint8Array, fields: Field[], extra: fc.Arbitrary<Mutated>[] = []): fc.Arbitrary<Mutated> {
	const base = new Uint8Array(file); // a plain copy: a Buffer's slice() would share (and corrupt) the original
	const len = base.length;
	const arbs: fc.Arbitrary<Mutated>[] = [
		fc.constant({ bytes: base.slice(), how: 'the valid file' }),
		fc.nat({ max: Math.max(0, len - 1) }).map((n) => ({ bytes: base.slice(0, n), how: `truncated to ${n} bytes` })),
		fc.uint8Array({ minLength: 1, maxLength: 64 }).map((b) => ({ bytes: concat(base, b), how: `extended by ${b.length} bytes` })),
		fc.tuple(fc.nat({ max: Math.max(0, len - 1) }), fc.integer({ min: 0, max: 255 })).map(([at, v]) => {
			const b = base.slice();
			b[at] = v;
			return { bytes: b, how: `byte ${at} set to ${v}` };
		}),
		fc.uint8Array({ maxLength: 512 }).map((b) => ({ bytes: b, how: `${b.length} random bytes` })),
		...extra
	];
	if (fields.length)
		arbs.push(
			fc.tuple(fc.constantFrom(...fields), edgeInt(len)).map(([f, v]) => {
				const b = base.slice();
				writeField(b, f, v);
				return { bytes: b, how: `${f.name} set to ${v}` };
			}),
			// Two fields at once: a count and the size that should follow it, both lying consistently.
			fc.tuple(fc.constantFrom(...fields), edgeInt(len), fc.constantFrom(...fields), edgeInt(len)).map(([f, v, g, w]) => {
				const b = base.slice();
				writeField(b, f, v);
				writeField(b, g, w);
				return { bytes: b, how: `${f.name} set to ${v} and ${g.name} to ${w}` };
			})
		);
	return fc.oneof(...arbs);
}

/** The bytes as an ArrayBuffer of exactly their length (parsers take ArrayBuffers). */
// new Uint8Array(b), not b.slice(): a Node Buffer's slice() is a view into its pool, not a copy.
export const toBuffer = (b: Uint8Array): ArrayBuffer => new Uint8Array(b).buffer as ArrayBuffer;

/** Dtype widening shared by the readers: everything becomes float32 here. */

export function halfToFloat(h: number): number {
	const s = h & 0x8000 ? -1 : 1;
	const e = (h >> 10) & 0x1f;
	const m = h & 0x3ff;
	if (e === 0) return s * 2 ** -14 * (m / 1024);
	if (e === 31) return m ? NaN : s * Infinity;
	return s * 2 ** (e - 15) * (1 + m / 1024);
}

/** Reads `count` little-endian values of a float dtype at `offset` as a Float32Array. */
export function widen(bytes: Uint8Array, offset: number, count: number, dtype: 'F32' | 'F16' | 'BF16' | 'F64'): Float32Array {
	const dv = new DataView(bytes.buffer, bytes.byteOffset + offset);
	const out = new Float32Array(count);
	if (dtype === 'F32') {
		if ((bytes.byteOffset + offset) % 4 === 0) out.set(new Float32Array(bytes.buffer, bytes.byteOffset + offset, count));
		else for (let i = 0; i < count; i++) out[i] = dv.getFloat32(4 * i, true);
	} else if (dtype === 'F16') for (let i = 0; i < count; i++) out[i] = halfToFloat(dv.getUint16(2 * i, true));
	else if (dtype === 'BF16') {
		const u = new Uint32Array(1);
		const f = new Float32Array(u.buffer);
		for (let i = 0; i < count; i++) {
			u[0] = dv.getUint16(2 * i, true) << 16;
			out[i] = f[0];
		}
	} else for (let i = 0; i < count; i++) out[i] = dv.getFloat64(8 * i, true);
	return out;
}

export const dtypeBytes = { F32: 4, F16: 2, BF16: 2, F64: 8 } as const;
export type FloatDtype = keyof typeof dtypeBytes;

export interface NamedTensor {
	dtype: FloatDtype;
	shape: number[];
	data: Float32Array;
}

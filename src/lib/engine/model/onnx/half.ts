/** IEEE fp16 <-> fp32 for the few tensors that cross to the CPU (fp16 exports' logits, checks). */
export function fromHalf(h: number): number {
	const s = h & 0x8000 ? -1 : 1;
	const e = (h >> 10) & 0x1f;
	const f = h & 0x3ff;
	if (e === 0) return s * f * 2 ** -24;
	if (e === 31) return f ? NaN : s * Infinity;
	return s * (1 + f / 1024) * 2 ** (e - 15);
}

export function toHalf(x: number): number {
	const f32 = new Float32Array([x]);
	const u = new Uint32Array(f32.buffer)[0];
	const sign = (u >> 16) & 0x8000;
	const exp = ((u >> 23) & 0xff) - 127 + 15;
	let mant = u & 0x7fffff;
	if (exp <= 0) return sign; // flush tiny values to zero: v is drawn well inside fp16's range
	if (exp >= 31) return sign | 0x7c00;
	// Round to nearest even.
	const round = mant & 0x1fff;
	mant >>= 13;
	let h = sign | (exp << 10) | mant;
	if (round > 0x1000 || (round === 0x1000 && mant & 1)) h++;
	return h;
}

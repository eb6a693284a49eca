/**
 * Small numeric helpers shared by the tests (one home, so every test measures error the same way).
 */

/** max_i |a[i] − b[i]|; throws when the lengths differ (a silent zip would hide a shape bug). */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
	if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
	let m = 0;
	for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
	return m;
}

/** max_i |a[i]|. */
export function maxAbs(a: ArrayLike<number>): number {
	let m = 0;
	for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
	return m;
}

/** The index of the largest value (the first one on ties), as greedy decoding picks. */
export function argmax(a: ArrayLike<number>): number {
	let best = 0;
	for (let i = 1; i < a.length; i++) if (a[i] > a[best]) best = i;
	return best;
}

/** Row-major flattening of nested rows ([position][d_model] in reference.json). */
export function flat(rows: number[][]): Float32Array {
	return Float32Array.from(rows.flat());
}

/**
 * A small seeded PRNG (xorshift32 mixed by splitmix32), so a seed reproduces a completion exactly
 * across reloads and machines. Returns floats in [0, 1).
 */
export function seededRandom(seed: number): () => number {
	// splitmix32 of the seed, so nearby seeds give unrelated streams and 0 is not a fixed point
	let s = seed >>> 0;
	const mix = () => {
		s = (s + 0x9e3779b9) >>> 0;
		let z = s;
		z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
		z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
		return (z ^ (z >>> 16)) >>> 0;
	};
	let x = mix() || 1;
	return () => {
		x ^= x << 13;
		x >>>= 0;
		x ^= x >>> 17;
		x ^= x << 5;
		x >>>= 0;
		return x / 4294967296;
	};
}

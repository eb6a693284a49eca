/**
 * Weight layouts for the llama2.c graphs: llama2.c stores each projection as [out, in] row-major,
 * ONNX's MatMul reads [in, out]. Both builders (plain and fused) transpose through here.
 */

/**
 * [out, in] row-major -> [in, out]: row o of w becomes column `colOf(o)` of a `width`-wide matrix
 * (`out` by default), input i its row `rowOf(i)` of `height` (`inp` by default). Cells nothing maps
 * to stay zero (padded heads).
 */
export function transposeTo(
	w: Float32Array,
	out: number,
	inp: number,
	colOf: (o: number) => number = (o) => o,
	{ width = out, rowOf = (i: number) => i, height = inp }: { width?: number; rowOf?: (i: number) => number; height?: number } = {}
): Float32Array {
	const t = new Float32Array(width * height);
	for (let o = 0; o < out; o++) {
		const col = colOf(o);
		for (let i = 0; i < inp; i++) t[rowOf(i) * width + col] = w[o * inp + i];
	}
	return t;
}

/**
 * Head dims padded with zeros to `padded` (a head of hs at h·hs lands at h·padded): q·k and the
 * attention-weighted v are unchanged, the padded output dims are zero.
 */
export const padHeads = (hs: number, padded: number) => (o: number) => Math.floor(o / hs) * padded + (o % hs);

/**
 * Within each head of size hs, interleaved RoPE pairs (2j, 2j+1), as llama2.c rotates them, become
 * halves (j, j + hs/2), as onnxruntime's rotary rotates them with `interleaved = 0`. Applied to both
 * the query and the key rows it leaves every q·k (so attention) unchanged. With `padded` > hs the
 * head is also padded: the real halves are dims [0, hs/2) and [padded/2, padded/2 + hs/2).
 */
export const halvesFromPairs =
	(hs: number, padded = hs) =>
	(o: number) => {
		const i = o % hs;
		return Math.floor(o / hs) * padded + (i & 1 ? padded / 2 : 0) + (i >> 1);
	};

/** Columns side by side: [in, a] ‖ [in, b] ‖ … -> [in, a + b + …] (packed projections). */
export function concatColumns(parts: { data: Float32Array; cols: number }[], inp: number): Float32Array {
	const width = parts.reduce((n, p) => n + p.cols, 0);
	const out = new Float32Array(inp * width);
	for (let i = 0; i < inp; i++) {
		let at = i * width;
		for (const p of parts) {
			out.set(p.data.subarray(i * p.cols, (i + 1) * p.cols), at);
			at += p.cols;
		}
	}
	return out;
}

/**
 * The largest weights of a segment graph split into pieces, one product per piece, their outputs
 * joined by a Concat: the same product (each output column is computed from the same row and
 * column as before), in segments only (the traced decoder graph keeps its one head).
 *
 *   Gemm(x, W, transB = 1), W [N, K]  (a tied head run on the embedding: tied-head.ts)
 *     pieces of W's rows: consecutive byte ranges of the same external-data entry
 *   MatMul(x, W), W [K, N]            (an untied head, GPT-2's [768, 50257] copy)
 *     pieces of W's columns: read from a column file (column-file.ts), since a column piece of a
 *     row-major matrix is not one byte range
 *
 * Why: on wasm onnxruntime loads every initializer of a session, then prepacks each MatMul/Gemm
 * weight into a new buffer and frees the original, and its heap never shrinks. One 640 MB weight
 * (Gemma 3's tied head) packed in one piece needs 640 MB more heap than the weights at that
 * moment, and onnxruntime's loader copies all of it out of the weights file in one read. In
 * pieces, each piece's pack reuses the hole the previous piece's original left, so the heap grows
 * by about one piece, and the loader holds one piece at a time. Only weights that one product
 * alone reads and that are stored as external data: a weight read elsewhere too (the embedding
 * while its Gather is still in the graph: embedding-outside.ts takes it out first) would stay
 * loaded whole beside its pieces. Measured on wasm (`npm run bench:real-size`, external data, with
 * the embedding outside): onnxruntime's heap for Gemma-3-270M size 1675 -> 1131 MB (1023 MB of
 * weights), flat across re-cuts where it grew by ~550 MB; GPT-2 size 693 -> 670 MB (622 MB).
 * The products are the same: `--verify` on the 124M export gives logits equal to the unmodified
 * graph's to 0.0.
 */
import { DataType, GraphIndex, type NodeProto, type TensorProto } from './graph';
import { pieceOffsets, type ColumnFile } from './column-file';

/** Bytes per piece, at most: about the size of a layer's weights, not of the vocabulary. */
export const PIECE_BYTES = 32 * 1024 * 1024;

const WIDTH: Record<number, number> = { [DataType.FLOAT]: 4, [DataType.FLOAT16]: 2 };

export interface InPieces {
	graph: GraphIndex;
	/** The column files the MatMul pieces read (to hand onnxruntime beside the weights files). */
	columnFiles: ColumnFile[];
}

/** `g` with its large single-reader external product weights in pieces; `g` itself where there are none. */
export function weightsInPieces(g: GraphIndex, pieceBytes = PIECE_BYTES): InPieces {
	const edits = new Map<NodeProto, NodeProto[]>();
	const added: TensorProto[] = [];
	const columnFiles: ColumnFile[] = [];
	for (const node of g.nodes) {
		const w = splittable(g, node, pieceBytes);
		if (!w) continue;
		const split = node.opType === 'Gemm' ? rowPieces(node, w, pieceBytes) : columnPieces(node, w, pieceBytes, columnFiles.length);
		edits.set(node, split.nodes);
		added.push(...split.initializers);
		if (split.columnFile) columnFiles.push(split.columnFile);
	}
	if (!edits.size) return { graph: g, columnFiles };
	const src = g.model.graph!;
	const graph = new GraphIndex({
		...g.model,
		graph: {
			...src,
			node: src.node!.flatMap((n) => edits.get(n) ?? [n]),
			initializer: [...(src.initializer ?? []), ...added]
		}
	});
	return { graph, columnFiles };
}

interface Weight {
	name: string;
	t: TensorProto;
	dims: [number, number];
	width: number;
	location: string;
	offset: number;
}

/** The weight of a plain Gemm(transB) or MatMul by a 2-D external initializer that only it reads and that exceeds a piece. */
function splittable(g: GraphIndex, node: NodeProto, pieceBytes: number): Weight | null {
	if (node.domain && node.domain !== 'ai.onnx') return null;
	if (node.opType === 'Gemm') {
		const attr = (name: string) => node.attribute?.find((a) => a.name === name);
		const plain = node.input!.length === 2 && Number(attr('transB')?.i ?? 0) === 1 && Number(attr('transA')?.i ?? 0) === 0;
		if (!plain || (attr('alpha')?.f ?? 1) !== 1) return null;
	} else if (node.opType !== 'MatMul') return null;
	const name = node.input![1];
	const t = g.initializers.get(name);
	if (!t || t.dataLocation !== 1 || !t.dataType || !WIDTH[t.dataType]) return null;
	if ((g.consumers.get(name) ?? []).length !== 1) return null;
	const dims = (t.dims ?? []).map(Number);
	if (dims.length !== 2) return null;
	const width = WIDTH[t.dataType];
	if (dims[0] * dims[1] * width <= pieceBytes) return null;
	const entry = (k: string) => t.externalData?.find((e) => e.key === k)?.value;
	const location = entry('location');
	if (!location) return null;
	return { name, t, dims: [dims[0], dims[1]], width, location, offset: Number(entry('offset') ?? 0) };
}

const external = (w: Weight, name: string, dims: number[], location: string, offset: number, length: number): TensorProto => ({
	name,
	dataType: w.t.dataType,
	dims,
	dataLocation: 1,
	externalData: [
		{ key: 'location', value: location },
		{ key: 'offset', value: String(offset) },
		{ key: 'length', value: String(length) }
	]
});

/** One product per piece and the Concat of their outputs along `axis`, written to the node's output. */
function joined(node: NodeProto, w: Weight, pieces: TensorProto[], axis: number): NodeProto[] {
	const out = (i: number) => `${w.name}/loupe_piece/y${i}`;
	return [
		...pieces.map((p, i) => ({
			...node,
			name: `${w.name}/loupe_piece/${node.opType}${i}`,
			input: [node.input![0], p.name!],
			output: [out(i)]
		})),
		{
			name: `${w.name}/loupe_piece/concat`,
			opType: 'Concat',
			input: pieces.map((_, i) => out(i)),
			output: [node.output![0]],
			attribute: [{ name: 'axis', type: 2, i: axis }]
		}
	];
}

/**
 * How many rows (or columns) each piece takes, `unitBytes` each: at most `pieceBytes`, in multiples
 * of 16 (MLAS packs in panels of 16), each piece 32 smaller than the one before. Why smaller: a
 * packed copy is a little larger than its original (alignment, the allocator's header), so it
 * cannot reuse its own original's hole; the next piece's packed copy, 32 units smaller, fits the
 * hole the previous piece's original left, and the heap grows by one piece, not by all of them.
 */
export function pieceSizes(total: number, unitBytes: number, pieceBytes: number): number[] {
	let size = Math.max(16, Math.floor(pieceBytes / unitBytes / 16) * 16);
	const out: number[] = [];
	for (let left = total; left > 0; size = Math.max(16, size - 32)) {
		const n = Math.min(size, left);
		out.push(n);
		left -= n;
	}
	return out;
}

/** Gemm(transB): W [N, K] by rows, each piece a byte range of W's own entry; outputs [M, n] joined on axis 1. */
function rowPieces(node: NodeProto, w: Weight, pieceBytes: number) {
	const [N, K] = w.dims;
	const rowBytes = K * w.width;
	const initializers: TensorProto[] = [];
	let row = 0;
	for (const [i, rows] of pieceSizes(N, rowBytes, pieceBytes).entries()) {
		initializers.push(external(w, `${w.name}/loupe_piece/w${i}`, [rows, K], w.location, w.offset + row * rowBytes, rows * rowBytes));
		row += rows;
	}
	return { nodes: joined(node, w, initializers, 1), initializers, columnFile: undefined };
}

/** MatMul: W [K, N] by columns, read from a column file; outputs [..., n] joined on the last axis. */
function columnPieces(node: NodeProto, w: Weight, pieceBytes: number, index: number) {
	const [K, N] = w.dims;
	const pieces = pieceSizes(N, K * w.width, pieceBytes);
	const columnFile: ColumnFile = {
		path: `loupe-columns-${index}.bin`,
		source: w.location,
		offset: w.offset,
		rows: K,
		columns: N,
		width: w.width,
		pieces
	};
	const starts = pieceOffsets(columnFile);
	const initializers = pieces.map((n, i) =>
		external(w, `${w.name}/loupe_piece/w${i}`, [K, n], columnFile.path, starts[i], starts[i + 1] - starts[i])
	);
	return { nodes: joined(node, w, initializers, -1), initializers, columnFile };
}

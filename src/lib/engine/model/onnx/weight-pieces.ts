/**
 * A large `Gemm(x, W, transB = 1)` weight split by rows into several initializers that point at
 * consecutive byte ranges of the same external-data entry, one Gemm each, their outputs joined by
 * a Concat: the same product (each output column is one row of W times x, computed alike), in
 * segments only (the traced decoder graph keeps its one head).
 *
 * Why: on wasm onnxruntime loads every initializer of a session, then prepacks each Gemm weight
 * into a new buffer and frees the original, and its heap never shrinks. A tied head (Gemma 3:
 * W_E, [262144, 640], 640 MB, run as Gemm(transB) on the embedding: tied-head.ts) packed in one
 * piece needs 640 MB more heap than the weights at that moment, and its loader copies the whole
 * 640 MB out of the weights file in one read. In pieces, each piece's pack reuses the hole the
 * previous piece's original left, so the heap grows by about one piece, and the loader reads one
 * piece at a time. Only where nothing else reads W: with the embedding Gather still in the graph,
 * the whole matrix would stay loaded beside the pieces (embedding-outside.ts takes it out first).
 */
import { DataType, GraphIndex, type NodeProto, type TensorProto } from './graph';

/** Bytes per piece, at most: about the size of a layer's weights, not of the vocabulary. */
export const PIECE_BYTES = 32 * 1024 * 1024;

const BYTES: Record<number, number> = { [DataType.FLOAT]: 4, [DataType.FLOAT16]: 2 };

/** `g` with every large external Gemm(transB) weight read by that Gemm alone split into pieces; `g` itself where there is none. */
export function gemmWeightInPieces(g: GraphIndex, pieceBytes = PIECE_BYTES): GraphIndex {
	const edits = new Map<NodeProto, NodeProto[]>();
	const added: TensorProto[] = [];
	for (const node of g.nodes) {
		const split = pieces(g, node, pieceBytes);
		if (!split) continue;
		edits.set(node, split.nodes);
		added.push(...split.initializers);
	}
	if (!edits.size) return g;
	const src = g.model.graph!;
	return new GraphIndex({
		...g.model,
		graph: {
			...src,
			node: src.node!.flatMap((n) => edits.get(n) ?? [n]),
			initializer: [...(src.initializer ?? []), ...added]
		}
	});
}

function pieces(g: GraphIndex, node: NodeProto, pieceBytes: number): { nodes: NodeProto[]; initializers: TensorProto[] } | null {
	if (node.opType !== 'Gemm' || (node.domain && node.domain !== 'ai.onnx') || node.input!.length !== 2) return null;
	const attr = (name: string) => node.attribute?.find((a) => a.name === name);
	const int = (name: string) => Number(attr(name)?.i ?? 0);
	if (int('transB') !== 1 || int('transA') !== 0 || (attr('alpha')?.f ?? 1) !== 1) return null;
	const wName = node.input![1];
	const w = g.initializers.get(wName);
	if (!w || w.dataLocation !== 1 || !w.dataType || !BYTES[w.dataType]) return null;
	if ((g.consumers.get(wName) ?? []).length !== 1) return null;
	const dims = (w.dims ?? []).map(Number);
	if (dims.length !== 2) return null;
	const [N, K] = dims;
	const rowBytes = K * BYTES[w.dataType];
	const rowsPer = Math.max(1, Math.floor(pieceBytes / rowBytes));
	if (N <= rowsPer) return null;
	const entry = (k: string) => w.externalData?.find((e) => e.key === k)?.value;
	const location = entry('location');
	if (!location) return null;
	const offset = Number(entry('offset') ?? 0);
	const name = (s: string) => `${wName}/loupe_piece/${s}`;
	const initializers: TensorProto[] = [];
	const nodes: NodeProto[] = [];
	const outs: string[] = [];
	for (let row = 0, i = 0; row < N; row += rowsPer, i++) {
		const rows = Math.min(rowsPer, N - row);
		const piece = name(`w${i}`);
		initializers.push({
			name: piece,
			dataType: w.dataType,
			dims: [rows, K],
			dataLocation: 1,
			externalData: [
				{ key: 'location', value: location },
				{ key: 'offset', value: String(offset + row * rowBytes) },
				{ key: 'length', value: String(rows * rowBytes) }
			]
		});
		const out = name(`y${i}`);
		outs.push(out);
		nodes.push({ ...node, name: name(`gemm${i}`), input: [node.input![0], piece], output: [out] });
	}
	nodes.push({
		name: name('concat'),
		opType: 'Concat',
		input: outs,
		output: [node.output![0]],
		attribute: [{ name: 'axis', type: 2, i: 1 }]
	});
	return { nodes, initializers };
}

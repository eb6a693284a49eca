/**
 * The order of a segment's nodes in its file, chosen for onnxruntime's heap. On wasm onnxruntime
 * loads every initializer of a session, then walks the nodes in file order and prepacks each
 * MatMul/Gemm weight (input B) into a new buffer, freeing the original once every reader has packed
 * it (SessionState::PrepackConstantInitializedTensors). A wasm heap never shrinks, so where one
 * weight dwarfs the others (an LM head stored as its own [d, V] copy, as torch exports a tied GPT-2
 * head: 154 MB beside 9 MB layer weights) and is packed last, no hole the smaller weights left fits
 * it, and the heap grows by its size once more. Packed first, its buffer is the heap's first new
 * block, and its original's hole takes the smaller packs that follow. Measured on wasm, GPT-2 small
 * size (`npm run bench:real-size -- --model gpt2 --variant external`, twice each): onnxruntime's heap
 * 1005 -> 851 MB for 622 MB of weights, the same after re-cuts; peak RSS over the weights 1.87× ->
 * 1.56–1.63× uncut, 2.16–2.23× -> 1.95–2.04× after cuts; greedy tokens/s unchanged (1.6 -> 1.7).
 * A weight read in pieces (weight-pieces.ts) is one weight here: its pieces move to the front
 * together, in their falling sizes, so that each pack fits the hole the previous piece's original
 * left. Measured the same way: Gemma-3-270M size's head in pieces at the end of the file, heap
 * 1176 MB, growing by ~100 MB a re-cut; first, in pieces of one size, 1676 MB (no pack fitted a
 * hole); first, in falling sizes, 1131 MB and flat across re-cuts. GPT-2 size: 799 / 678 / 670 MB.
 *
 * Only the file order changes: onnxruntime sorts the graph itself to run it (exports are not always
 * sorted either), so the outputs are the same.
 */
import type { GraphIndex, NodeProto } from './graph';

/** How many times larger than every other packed weight a weight must be to be packed first. */
const OUTLIER = 8;

/**
 * `nodes` with the MatMul/Gemm whose packed weight dwarfs the segment's others moved to the front;
 * `nodes` itself where there is none. Only a weight this node alone reads counts: one the
 * embedding's Gather reads too (a tied head run as Gemm on W_E) is never freed, and moving every
 * large weight by size measured worse for Gemma 3 270M size (heap 1765 -> 1865 MB) and less good
 * for GPT-2 (1005 -> 894 MB) than moving the head alone.
 */
export function largestPackedFirst(nodes: NodeProto[], g: GraphIndex): NodeProto[] {
	const readers = new Map<string, number>();
	for (const n of nodes) for (const i of new Set(n.input ?? [])) readers.set(i, (readers.get(i) ?? 0) + 1);
	// A weight read in pieces (weight-pieces.ts) counts as one: its products move together.
	const groups = new Map<string, { nodes: NodeProto[]; size: number }>();
	for (const n of nodes) {
		if (n.opType !== 'MatMul' && n.opType !== 'Gemm') continue;
		const name = n.input?.[1] ?? '';
		const w = g.initializers.get(name);
		if (!w || readers.get(name) !== 1) continue;
		const key = name.replace(PIECE, '');
		const group = groups.get(key) ?? { nodes: [], size: 0 };
		group.nodes.push(n);
		group.size += (w.dims ?? []).map(Number).reduce((a, x) => a * x, 1);
		groups.set(key, group);
	}
	if (groups.size < 2) return nodes;
	const [first, second] = [...groups.values()].sort((a, b) => b.size - a.size);
	if (first.size < OUTLIER * second.size) return nodes;
	const moved = new Set(first.nodes);
	return [...first.nodes, ...nodes.filter((n) => !moved.has(n))];
}

/** The suffix weight-pieces.ts gives each piece of a weight. */
const PIECE = /\/loupe_piece\/w\d+$/;

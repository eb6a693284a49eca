/**
 * A tied LM head written as `MatMul(x, Transpose(W_E))` (the embedding [V, d] transposed in the
 * graph, as exports that store the tied matrix once write it) costs onnxruntime three copies of
 * the largest weight: W_E for the Gather, the Transpose constant-folded into a new [d, V]
 * initializer, and MatMul's prepacked copy of that. For Gemma 3 270M that is 3 × 671 MB in a wasm
 * heap capped at 4 GiB (measured: 2.5 GB of heap for 1.07 GB of weights).
 *
 * Rewritten here as `Reshape → Gemm(transB = 1) on W_E itself → Reshape`: the same product in
 * standard ops every execution provider runs, reading the embedding in place; nothing to fold, and
 * only Gemm's prepacked copy remains (measured: 1.76 GB of heap, and faster). Applied after surgery,
 * before cutting; the logits keep their name, so the decoder's IO is unchanged.
 */
import { GraphIndex, type NodeProto, type TensorProto } from './graph';

/** Returns a new index with the tied head rewritten, or `g` itself when its head is not of that form. */
export function gemmForTiedHead(g: GraphIndex, logits: string): GraphIndex {
	let writer = g.producer.get(logits)?.node;
	while (writer?.opType === 'Identity') writer = g.producer.get(writer.input![0])?.node;
	if (!writer || writer.opType !== 'MatMul') return g;
	const t = g.producer.get(writer.input![1])?.node;
	if (t?.opType !== 'Transpose') return g;
	const perm = t.attribute?.find((a) => a.name === 'perm')?.ints?.map(Number);
	if (perm && !(perm.length === 2 && perm[0] === 1 && perm[1] === 0)) return g;
	const w = g.initializers.get(t.input![0]);
	const dims = w?.dims?.map(Number);
	if (!w || dims?.length !== 2) return g;
	const [V, D] = dims;
	const x = writer.input![0];
	const y = writer.output![0];
	const n = (s: string) => `loupe/tied_head/${s}`;
	const int64 = (name: string, v: number[]): TensorProto => ({
		name,
		dataType: 7,
		dims: [v.length],
		rawData: new Uint8Array(BigInt64Array.from(v.map(BigInt)).buffer)
	});
	const replacement: NodeProto[] = [
		{ name: n('flatten'), opType: 'Reshape', input: [x, n('rows_by_d')], output: [n('x2d')] },
		{
			name: n('gemm'),
			opType: 'Gemm',
			input: [n('x2d'), t.input![0]],
			output: [n('logits2d')],
			attribute: [{ name: 'transB', type: 2, i: 1 }]
		},
		{ name: n('shape'), opType: 'Shape', input: [x], output: [n('x_shape')] },
		{ name: n('leading'), opType: 'Slice', input: [n('x_shape'), n('zero'), n('minus_one')], output: [n('lead_dims')] },
		{
			name: n('out_shape'),
			opType: 'Concat',
			input: [n('lead_dims'), n('vocab')],
			output: [n('logits_shape')],
			attribute: [{ name: 'axis', type: 2, i: 0 }]
		},
		{ name: n('unflatten'), opType: 'Reshape', input: [n('logits2d'), n('logits_shape')], output: [y] }
	];
	// The Transpose goes too unless something else reads it.
	const keepTranspose = (g.consumers.get(t.output![0]) ?? []).some((c) => c !== writer);
	const src = g.model.graph!;
	const nodes = src.node!.flatMap((node) => (node === writer ? replacement : node === t && !keepTranspose ? [] : [node]));
	const model = {
		...g.model,
		graph: {
			...src,
			node: nodes,
			initializer: [
				...src.initializer!,
				int64(n('rows_by_d'), [-1, D]),
				int64(n('zero'), [0]),
				int64(n('minus_one'), [-1]),
				int64(n('vocab'), [V])
			]
		}
	};
	return new GraphIndex(model);
}

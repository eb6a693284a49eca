/**
 * The token-embedding lookup taken out of the segments: in the graph Loupe cuts (never the traced
 * decoder graph, which attribution reads whole), the embedding Gather of a plain fp32/fp16
 * initializer becomes a graph input (`loupe_embeds`, [batch, sequence, d_model]) that the runner
 * fills with just this step's rows, read from the weights file (embedding-rows.ts).
 *
 * Why: onnxruntime otherwise holds the whole [vocab, d_model] matrix for a lookup of a few rows,
 * and where the LM head is tied to it (Gemma 3: 640 MB) it holds it twice, unpacked for the Gather
 * and packed as the head Gemm's operand. Taken out, the matrix is in a session only where something
 * else reads it (the tied head's Gemm: packed once, its original freed); an untied one (GPT-2's
 * wte) is in no session at all.
 *
 * Exact: the rows are the matrix's own bytes, and ids that reach the Gather through shape-only ops
 * (Reshape/Flatten/Unsqueeze/Squeeze/Cast/Identity: torch's `input_ids.view(-1, S)`) keep their
 * order, so the input reshaped to the indices' shape + [d_model] is the Gather's output. Everything
 * after the Gather (Gemma's ×√d Mul, GPT-2's position Add) stays in the graph, and the Gather's
 * output keeps its name, so `blocks.0.hook_resid_pre` reads what it read before. Quantized
 * embeddings (GatherBlockQuantized, a DequantizeLinear before the Gather), EmbedLayerNormalization
 * and matrices of other types are left as they are.
 */
import { DataType, GraphIndex, type NodeProto, type TensorProto, type ValueInfoProto } from './graph';
import { RESHAPES } from './stream-ops';
import type { ResidualTrace } from './trace-residual';

/** The graph input that replaces the embedding Gather. */
export const EMBEDS_INPUT = 'loupe_embeds';

/** What the runner needs to fill the input: where the matrix's rows are and their type. */
export interface EmbeddingInput {
	/** The graph input name (`EMBEDS_INPUT`). */
	input: string;
	/** The token ids' graph input (the runner reads the step's ids from it). */
	ids: string;
	/** The embedding initializer (for messages). */
	weight: string;
	dtype: 'float32' | 'float16';
	vocab: number;
	dModel: number;
	/** The external-data file holding the matrix (the path onnxruntime knows it by), or absent where it is inline. */
	location?: string;
	/** Byte offset of row 0 in that file. */
	offset: number;
	/** The matrix's bytes where the graph stores them inline (a view, not a copy). */
	inline?: Uint8Array;
}

const BYTES: Record<number, number> = { [DataType.FLOAT]: 4, [DataType.FLOAT16]: 2 };

const rewritten = new WeakMap<GraphIndex, { graph: GraphIndex; embedding: EmbeddingInput } | null>();

/**
 * `g` with the token-embedding Gather replaced by the `loupe_embeds` input, and where its rows are;
 * null where the embedding is not a plain fp32/fp16 [vocab, d_model] initializer read by a Gather
 * on the ids (then the segments keep it). Memoised per graph: every cut of a model shares it.
 */
export function embeddingAsInput(
	g: GraphIndex,
	trace: ResidualTrace,
	idsName: string
): { graph: GraphIndex; embedding: EmbeddingInput } | null {
	if (rewritten.has(g)) return rewritten.get(g)!;
	const out = rewrite(g, trace, idsName);
	rewritten.set(g, out);
	return out;
}

function rewrite(g: GraphIndex, trace: ResidualTrace, idsName: string): { graph: GraphIndex; embedding: EmbeddingInput } | null {
	const w = g.initializers.get(trace.embedding);
	if (!w || !w.dataType || !BYTES[w.dataType]) return null;
	const dims = (w.dims ?? []).map(Number);
	if (dims.length !== 2 || dims[0] !== trace.vocabSize || dims[1] !== trace.dModel) return null;
	const where = matrixBytes(w, dims[0] * dims[1] * BYTES[w.dataType]);
	if (!where) return null;
	const fromIds = (t: string): boolean => {
		if (t === idsName) return true;
		const p = g.producer.get(t)?.node;
		return !!p && RESHAPES.has(p.opType!) && fromIds(p.input![0]);
	};
	const gather = g.nodes.find(
		(n) =>
			n.opType === 'Gather' &&
			(!n.domain || n.domain === 'ai.onnx') &&
			n.input![0] === trace.embedding &&
			Number(n.attribute?.find((a) => a.name === 'axis')?.i ?? 0) === 0 &&
			fromIds(n.input![1])
	);
	if (!gather) return null;
	const indices = gather.input![1];
	const y = gather.output![0];
	const name = (s: string) => `loupe/embeds/${s}`;
	// Ids straight from the input are [batch, sequence]: the rows are the Gather's output as they are.
	const replacement: NodeProto[] =
		indices === idsName
			? [{ name: name('identity'), opType: 'Identity', input: [EMBEDS_INPUT], output: [y] }]
			: [
					{ name: name('ids_shape'), opType: 'Shape', input: [indices], output: [name('ids_shape')] },
					{
						name: name('shape'),
						opType: 'Concat',
						input: [name('ids_shape'), name('d_model')],
						output: [name('shape')],
						attribute: [{ name: 'axis', type: 2, i: 0 }]
					},
					{ name: name('reshape'), opType: 'Reshape', input: [EMBEDS_INPUT, name('shape')], output: [y] }
				];
	const input: ValueInfoProto = {
		name: EMBEDS_INPUT,
		type: {
			tensorType: {
				elemType: w.dataType,
				shape: { dim: [{ dimParam: 'batch_size' }, { dimParam: 'sequence_length' }, { dimValue: dims[1] }] }
			}
		}
	};
	const src = g.model.graph!;
	const dModel: TensorProto = {
		name: name('d_model'),
		dataType: DataType.INT64,
		dims: [1],
		rawData: new Uint8Array(BigInt64Array.of(BigInt(dims[1])).buffer)
	};
	const model = {
		...g.model,
		graph: {
			...src,
			node: src.node!.flatMap((n) => (n === gather ? replacement : [n])),
			input: [...(src.input ?? []), input],
			initializer: [...(src.initializer ?? []), ...(indices === idsName ? [] : [dModel])]
		}
	};
	return {
		graph: new GraphIndex(model),
		embedding: {
			input: EMBEDS_INPUT,
			ids: idsName,
			weight: trace.embedding,
			dtype: w.dataType === DataType.FLOAT16 ? 'float16' : 'float32',
			vocab: dims[0],
			dModel: dims[1],
			...where
		}
	};
}

/** Where the matrix's bytes are: an external file and offset, or the inline bytes; null where neither holds it all. */
function matrixBytes(t: TensorProto, length: number): { location?: string; offset: number; inline?: Uint8Array } | null {
	if (t.dataLocation === 1) {
		const entry = (k: string) => t.externalData?.find((e) => e.key === k)?.value;
		const location = entry('location');
		const stored = entry('length');
		if (!location || (stored !== undefined && stored !== null && Number(stored) < length)) return null;
		return { location, offset: Number(entry('offset') ?? 0) };
	}
	if (t.rawData && t.rawData.byteLength >= length) return { offset: 0, inline: t.rawData };
	if (t.dataType === DataType.FLOAT && t.floatData?.length === length / 4)
		return { offset: 0, inline: new Uint8Array(Float32Array.from(t.floatData).buffer) };
	return null;
}

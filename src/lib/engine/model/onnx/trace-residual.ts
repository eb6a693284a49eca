/**
 * Finds the residual stream of an exported decoder by the graph's structure, not by tensor names.
 *
 *   token embedding  Gather(W_E, input_ids)            or EmbedLayerNormalization (output 2 = the sum)
 *     (+ position embedding Add, × Gemma's scale Mul: both read nothing computed from the stream)
 *   each layer       x ← x + branch(x)                  plain Add, or Skip[Simplified]LayerNormalization
 *                                                        (the sum is output 3)
 *     a residual add is an add of the stream and a branch computed from the stream through at least
 *     one weight product (MatMul, Gemm, a fused attention…); a branch that contains attention opens
 *     a layer, so sequential blocks (attention add, then MLP add) and parallel ones (one add) both
 *     count one layer each.
 *   final norm       the stream ends in a norm; when the last add is fused into it, output 3 is named
 *
 * The boundary tensors map to TransformerLens names: boundary b is `blocks.{b}.hook_resid_pre`
 * (= `blocks.{b-1}.hook_resid_post`), boundary nLayers is the last `hook_resid_post`. The hooks
 * inside each layer (attn_out, mlp_in, mlp_out) come from the residual adds' branches
 * (sublayer-hooks.ts).
 */
import { DataType, dataTypeName, type GraphIndex, type NodeProto } from './graph';
import { kvCacheInputs } from './kv-cache';
import {
	LAYER_NORMS,
	PASS_THROUGH,
	RESHAPES,
	SKIP_NORMS,
	WEIGHT_OPS,
	aliases,
	branchNodes,
	consumersThrough,
	hasAttention
} from './stream-ops';
import { findSublayerHooks, type HookSite, type ResidualAdd } from './sublayer-hooks';
import type { HookName } from '../hooks';

export { kvCacheInputs };

export interface ResidualBoundary {
	/** The tensor carrying the residual at this boundary. */
	tensor: string;
	/** What writes it: 'embedding', 'Add', 'SkipLayerNormalization output 3', … */
	source: string;
	/**
	 * The inputs whose sum is this tensor (a residual add's two operands, plus a fused bias): lets a
	 * check recompute the residual from tensors the unmodified graph already has.
	 */
	sumOf: string[];
	/** True when surgery named an optional output the export left unnamed. */
	exposed: boolean;
}

export interface ResidualTrace {
	architecture: string;
	dModel: number;
	vocabSize: number;
	nLayers: number;
	/** The residual's element type, e.g. 'float32'. */
	dtype: string;
	/** The token-embedding matrix (an initializer name). */
	embedding: string;
	/** boundaries[b], b = 0 … nLayers. */
	boundaries: ResidualBoundary[];
	/** How many residual adds each layer has (2: attention then MLP; 1: parallel). */
	addsPerLayer: number[];
	/** The hooks inside the layers that were found (those that were not are in `warnings`). */
	sites: Record<HookName, HookSite>;
	warnings: string[];
}

export class TraceError extends Error {}

/** Traces the residual stream, naming optional outputs where needed (this edits `g.model` in place). */
export function traceResidual(g: GraphIndex): ResidualTrace {
	refuseWhatCannotBeCut(g);
	const warnings: string[] = [];
	const kvInputs = kvCacheInputs(g);
	const emb = findEmbedding(g);
	const boundaries: ResidualBoundary[] = [];
	let x = emb.stream;
	let embedScale = false;
	let learnedPositions = emb.fusedPositions;

	// The embedding may be followed by a position-embedding Add or a scale Mul: neither reads the stream.
	for (;;) {
		const users = consumersThrough(g, x).filter((n) => !PASS_THROUGH.has(n.opType!));
		const only = users.length === 1 ? users[0] : null;
		if (!only || !(only.opType === 'Add' || only.opType === 'Mul')) break;
		const stream = aliases(g, x);
		const other = only.input!.find((t) => !stream.has(t))!;
		if (g.descendants(x).has(other)) break;
		if (only.opType === 'Mul') embedScale = true;
		else learnedPositions = true;
		x = only.output![0];
	}
	boundaries.push({ tensor: x, source: emb.source, sumOf: [], exposed: emb.exposed });

	const adds: ResidualAdd[] = [];
	let parallel = false;
	for (;;) {
		const next = findResidualAdd(g, x, kvInputs);
		if (!next) break;
		adds.push(next);
		x = next.boundary.tensor;
	}
	if (adds.length === 0)
		throw new TraceError(
			'No residual add follows the token embedding: this graph does not look like a transformer decoder ' +
				'(or its blocks are fused beyond what Loupe can trace).'
		);
	if (!adds[0].attention)
		throw new TraceError('The first residual branch after the embedding has no attention in it: Loupe cannot tell where the layers start.');

	const addsPerLayer: number[] = [];
	const layerAdds: ResidualAdd[][] = [];
	for (const [i, a] of adds.entries()) {
		if (a.attention) {
			if (i > 0) boundaries.push(adds[i - 1].boundary);
			addsPerLayer.push(1);
			layerAdds.push([a]);
		} else (addsPerLayer[addsPerLayer.length - 1]++, layerAdds[layerAdds.length - 1].push(a));
	}
	boundaries.push(adds[adds.length - 1].boundary);
	const nLayers = addsPerLayer.length;
	if (addsPerLayer.every((n) => n === 1)) parallel = true;

	if (kvInputs.size > 0 && kvInputs.size !== nLayers && kvInputs.size !== 2 * nLayers)
		warnings.push(`The graph has ${kvInputs.size} KV-cache inputs for ${nLayers} traced layers.`);

	const sublayer = findSublayerHooks(g, layerAdds, kvInputs);
	warnings.push(...sublayer.warnings);

	// LayerNorm subtracts the mean from the stream; RMSNorm (SimplifiedLayerNormalization, the
	// opset-23 RMSNormalization, or written out) does not (fused ops say which outright).
	const layerNorm =
		g.nodes.some((n) => LAYER_NORMS.has(n.opType!)) || consumersThrough(g, boundaries[0].tensor).some((n) => n.opType === 'Sub');
	const architecture = embedScale ? 'gemma' : parallel ? 'gpt-neox' : layerNorm ? (learnedPositions ? 'gpt2' : 'decoder') : 'llama';
	const dtypeCode = g.elemType(boundaries[0].tensor) ?? g.initializers.get(emb.weight)?.dataType ?? DataType.FLOAT;
	return {
		architecture,
		dModel: emb.dims[1],
		vocabSize: emb.dims[0],
		nLayers,
		dtype: dataTypeName[dtypeCode] ?? `type ${dtypeCode}`,
		embedding: emb.weight,
		boundaries,
		addsPerLayer,
		sites: sublayer.sites,
		warnings
	};
}

function refuseWhatCannotBeCut(g: GraphIndex) {
	const branching = g.nodes.find((n) => n.opType === 'If' || n.opType === 'Loop' || n.opType === 'Scan');
	if (branching) {
		const merged = [...g.graphInputs.keys()].some((n) => n.includes('use_cache_branch'));
		throw new TraceError(
			merged
				? 'This is a merged decoder (an If node chooses between the with-cache and without-cache graphs on use_cache_branch). ' +
						'Pick the plain decoder export instead: model.onnx or decoder_model.onnx / decoder_with_past_model.onnx.'
				: `The graph contains control flow (${branching.opType} node "${branching.name}"), which Loupe cannot cut. Pick an export without it.`
		);
	}
}

interface Embedding {
	weight: string;
	dims: number[];
	stream: string;
	source: string;
	exposed: boolean;
	fusedPositions: boolean;
}

function findEmbedding(g: GraphIndex): Embedding {
	const ids =
		[...g.graphInputs.values()].find((v) => v.name === 'input_ids') ??
		[...g.graphInputs.values()].find((v) => isIntType(v.type?.tensorType?.elemType));
	if (!ids) throw new TraceError('The graph has no integer token input (input_ids): it is not a token-level language model.');
	// torch's `input_ids.view(-1, S)` and friends: the ids reach the Gather through shape-only ops.
	const fromIds = (t: string): boolean => {
		if (t === ids.name) return true;
		const p = g.producer.get(t);
		return !!p && RESHAPES.has(p.node.opType!) && fromIds(p.node.input![0]);
	};
	for (const node of g.nodes) {
		if (node.opType === 'EmbedLayerNormalization' && fromIds(node.input![0])) {
			const weight = node.input![2];
			const exposed = !node.output![2];
			const stream = nameOutput(g, node, 2, 'loupe/embedding_sum');
			return {
				weight,
				dims: initializerDims(g, weight),
				stream,
				source: 'EmbedLayerNormalization output 2',
				exposed,
				fusedPositions: !!node.input![3]
			};
		}
		if ((node.opType === 'Gather' || node.opType === 'GatherBlockQuantized') && fromIds(node.input![1]) && g.isConstant(node.input![0])) {
			const weight = node.input![0];
			return {
				weight,
				dims: initializerDims(g, weight),
				stream: node.output![0],
				source: 'embedding Gather',
				exposed: false,
				fusedPositions: false
			};
		}
	}
	throw new TraceError('No token embedding found (a Gather on a constant matrix indexed by input_ids, or EmbedLayerNormalization).');
}

function initializerDims(g: GraphIndex, name: string): number[] {
	let t = g.initializers.get(name);
	// Quantized or cast embeddings: follow the chain back to the stored matrix.
	for (let p = g.producer.get(name); !t && p; p = g.producer.get(p.node.input![0])) t = g.initializers.get(p.node.input![0]);
	const dims = (t?.dims ?? []).map(Number);
	if (dims.length !== 2) throw new TraceError(`The token embedding "${name}" is not a [vocab, d_model] matrix.`);
	return dims;
}

function findResidualAdd(g: GraphIndex, x: string, kvInputs: Set<string>): ResidualAdd | null {
	const stream = aliases(g, x);
	// A fused norm writes the sum (x) and the normalised sum the next branch reads: both are the stream.
	const writer = g.producer.get(x)?.node;
	const fused = writer && (SKIP_NORMS.has(writer.opType!) || writer.opType === 'EmbedLayerNormalization');
	const downstream = new Set((fused ? writer.output!.filter(Boolean) : [x]).flatMap((t) => [...g.descendants(t)]));
	const candidates = consumersThrough(g, x)
		.filter((n) => n.opType === 'Add' || n.opType === 'Sum' || SKIP_NORMS.has(n.opType!))
		.sort((a, b) => g.order.get(a)! - g.order.get(b)!);
	for (const node of candidates) {
		const operands = SKIP_NORMS.has(node.opType!) ? node.input!.slice(0, 2) : node.input!;
		if (operands.length !== 2 || !operands.some((t) => stream.has(t))) continue;
		const branchSlot = operands.findIndex((t) => !stream.has(t));
		const branch = operands[branchSlot];
		if (!branch || !downstream.has(branch)) continue;
		const nodes = branchNodes(g, branch, stream, downstream);
		if (!nodes.some((n) => WEIGHT_OPS.has(n.opType!))) continue;
		const attention = hasAttention(nodes, kvInputs);
		const common = { node, branch, branchSlot, stream, downstream, attention };
		if (SKIP_NORMS.has(node.opType!)) {
			const exposed = !node.output![3];
			const biasSlot = node.opType === 'SkipLayerNormalization' ? 4 : 3;
			const bias = node.input![biasSlot] || undefined;
			const tensor = nameOutput(g, node, 3, `loupe/resid_sum_${g.order.get(node)}`);
			return {
				...common,
				boundary: { tensor, source: `${node.opType} output 3`, sumOf: [...operands, ...(bias ? [bias] : [])], exposed },
				bias: bias ? { name: bias, slot: biasSlot } : undefined
			};
		}
		return { ...common, boundary: { tensor: node.output![0], source: node.opType!, sumOf: operands, exposed: false } };
	}
	return null;
}

/** Names an optional output of a node (padding the outputs before it with ''), returning its name. */
function nameOutput(g: GraphIndex, node: NodeProto, slot: number, name: string): string {
	const outs = node.output!;
	if (outs[slot]) return outs[slot];
	while (outs.length <= slot) outs.push('');
	outs[slot] = name;
	g.producer.set(name, { node, index: g.order.get(node)!, slot });
	return name;
}

function isIntType(t: number | null | undefined) {
	return t === DataType.INT64 || t === DataType.INT32;
}

/**
 * What graph surgery needs to know about op types, and how it follows the residual stream through
 * plain copies: shared by the residual trace and the hooks inside the layers.
 */
import type { GraphIndex, NodeProto } from './graph';

/** Ops that pass a tensor on unchanged in value (a float-to-float Cast is what torch exports leave). */
export const PASS_THROUGH = new Set(['Cast', 'Identity']);
/** Ops that only change a tensor's shape, not its values: token ids reach the embedding through them. */
export const RESHAPES = new Set(['Reshape', 'Flatten', 'Unsqueeze', 'Squeeze', 'Cast', 'Identity']);
export const SKIP_NORMS = new Set(['SkipLayerNormalization', 'SkipSimplifiedLayerNormalization']);
/** Norms that subtract the mean (LayerNorm) — RMSNorm (SimplifiedLayerNormalization, RMSNormalization) does not. */
export const LAYER_NORMS = new Set(['LayerNormalization', 'SkipLayerNormalization', 'EmbedLayerNormalization']);
/**
 * Products with a weight. The standard opset-23 `Attention` takes projected q, k, v (no weight),
 * but it only ever sits behind the projections, so counting it here changes nothing.
 */
export const WEIGHT_OPS = new Set([
	'MatMul',
	'Gemm',
	'FusedMatMul',
	'MatMulNBits',
	'MatMulInteger',
	'DynamicQuantizeMatMul',
	'MatMulIntegerToFloat',
	'Attention',
	'MultiHeadAttention',
	'GroupQueryAttention',
	'QAttention',
	'PackedAttention',
	'Conv'
]);
/** A branch with one of these opens a layer (com.microsoft fused attention, opset-23 Attention, or plain softmax attention). */
export const ATTENTION_OPS = new Set([
	'Attention',
	'MultiHeadAttention',
	'GroupQueryAttention',
	'QAttention',
	'PackedAttention',
	'Softmax'
]);

/** The tensor and its plain copies (Cast, Identity), which carry the same stream. */
export function aliases(g: GraphIndex, x: string): Set<string> {
	const out = new Set([x]);
	const stack = [x];
	while (stack.length)
		for (const n of g.consumers.get(stack.pop()!) ?? [])
			if (PASS_THROUGH.has(n.opType!) && !out.has(n.output![0])) (out.add(n.output![0]), stack.push(n.output![0]));
	return out;
}

export function consumersThrough(g: GraphIndex, x: string): NodeProto[] {
	return [...aliases(g, x)].flatMap((t) => g.consumers.get(t) ?? []);
}

/** The nodes that compute `tensor` from the stream (walking back, not past the stream itself). */
export function branchNodes(g: GraphIndex, tensor: string, stream: Set<string>, downstream: Set<string>): NodeProto[] {
	return [...g.ancestors([tensor], stream)].filter((n) => n.output!.some((o) => downstream.has(o)));
}

export function hasAttention(nodes: NodeProto[], kvInputs: Set<string>): boolean {
	return nodes.some((n) => ATTENTION_OPS.has(n.opType!) || n.input!.some((t) => kvInputs.has(t)));
}

/**
 * The pieces of the fused llama2.c graph: onnxruntime's contrib operators, emitted as
 * onnxruntime-genai's model builder emits them, so each runs as one kernel on the wasm and WebGPU
 * execution providers instead of a dozen small ones.
 *   RMSNorm                    SimplifiedLayerNormalization (onnx domain, onnxruntime's)
 *   residual add + RMSNorm     com.microsoft SkipSimplifiedLayerNormalization (the sum is output 3)
 *   RoPE + grouped-query attn  com.microsoft GroupQueryAttention, do_rotary with cos/sin caches,
 *                              past_key/value [B,KV,P,hd] -> present_key/value [B,KV,P+S,hd]
 *   q, k, v projections        one packed MatMul (GroupQueryAttention splits it)
 *   SwiGLU                     com.microsoft QuickGelu (alpha 1: x·sigmoid(x)) and Mul
 * llama2.c rotates interleaved pairs; the q and k weight rows are permuted per head into halves, so
 * the kernel's non-interleaved rotary applies (q·k, and so attention, is unchanged).
 * onnxruntime's CPU (wasm) GroupQueryAttention refuses a head size that is not a multiple of 16
 * ("head_size shall be a multiple of 16"), so heads are padded with zero dims up to one
 * (stories260K: 8 -> 16): the scale stays 1/√hs, the KV cache is [B,KV,P,paddedHeadSize].
 */
import type { GraphBuilder } from '../onnx/graph-builder';
import { pastKeyName, pastValueName, presentKeyName, presentValueName } from '../segments';
import { headSize, kvDim, type LlamaConfig, type LlamaWeights } from './checkpoint';
import { concatColumns, halvesFromPairs, padHeads, transposeTo } from './layout';

const MS = 'com.microsoft';

/** The head size the fused graph's attention and KV cache use: llama2.c's, rounded up to a multiple of 16. */
export const paddedHeadSize = (c: LlamaConfig) => Math.ceil(headSize(c) / 16) * 16;

export interface FusedCtx {
	g: GraphBuilder;
	c: LlamaConfig;
	/** [B] int32: index of each sequence's last valid key (attention_mask's sum − 1). */
	seqlensK: string;
	/** int32 scalar: attention_mask's length (past + new). */
	totalSeqLen: string;
	cosCache: string; // [seqLen, hs/2]
	sinCache: string;
}

/**
 * What GroupQueryAttention reads besides q, k, v, from attention_mask as the model builder
 * computes it (its attn_mask_reformat subgraph for GQA): seqlens_k = ReduceSum(mask, 1) − 1 as
 * int32, total_sequence_length = Shape(mask)[1] as int32. The rotary caches are initializers.
 */
export function fusedPositional(g: GraphBuilder, c: LlamaConfig): Omit<FusedCtx, 'g' | 'c'> {
	const mask = g.input('attention_mask', 'int64', ['batch', 'total_seq']);
	const s = '/attn_mask_reformat/attn_mask_subgraph';
	const sum = g.op('ReduceSum', [mask, g.constant([1])], { keepdims: 0 }, `${s}/ReduceSum`);
	const seqlensK = g.op('Cast', [g.op('Sub', [sum, g.scalar(1, 'int64')], {}, `${s}/Sub`)], { to: 6 }, `${s}/seqlens_k`);
	const total = g.op('Gather', [g.op('Shape', [mask], {}, `${s}/Shape`), g.scalar(1, 'int64')], { axis: 0 }, `${s}/Gather`);
	const totalSeqLen = g.op('Cast', [total], { to: 6 }, `${s}/total_seq_len`);
	const hs = headSize(c);
	const half = paddedHeadSize(c) / 2;
	const cos = new Float32Array(c.seqLen * half).fill(1); // padded pairs (zeros) rotate by 0
	const sin = new Float32Array(c.seqLen * half);
	for (let pos = 0; pos < c.seqLen; pos++)
		for (let j = 0; j < hs / 2; j++) {
			// llama2.c's frequency for the pair starting at dim 2j of a head
			const freq = 1 / Math.pow(c.ropeTheta, (2 * j) / hs);
			cos[pos * half + j] = Math.cos(pos * freq);
			sin[pos * half + j] = Math.sin(pos * freq);
		}
	return { seqlensK, totalSeqLen, cosCache: g.weight('cos_cache', cos, [c.seqLen, half]), sinCache: g.weight('sin_cache', sin, [c.seqLen, half]) };
}

/** RMSNorm of x; output `${scope}/out`. */
export function simplifiedNorm(g: GraphBuilder, x: string, weight: Float32Array, eps: number, scope: string): string {
	const out = g.fresh(`${scope}/out`);
	g.node('SimplifiedLayerNormalization', [x, g.weight(`${scope}.weight`, weight, [weight.length])], [out], { axis: -1, epsilon: { float: eps }, stash_type: 1 });
	return out;
}

/** RMSNorm(x + skip) and the sum x + skip (named `sumName`), in one kernel. */
export function skipNorm(g: GraphBuilder, x: string, skip: string, weight: Float32Array, eps: number, scope: string, sumName: string) {
	const out = g.fresh(`${scope}/out`);
	const sum = g.fresh(sumName);
	g.node('SkipSimplifiedLayerNormalization', [x, skip, g.weight(`${scope}.weight`, weight, [weight.length])], [out, '', '', sum], { epsilon: { float: eps } }, MS);
	return { out, sum };
}

/** RMSNorm(x + skip) where the sum is not needed (the final norm). */
export function skipNormOnly(g: GraphBuilder, x: string, skip: string, weight: Float32Array, eps: number, scope: string): string {
	const out = g.fresh(`${scope}/out`);
	g.node('SkipSimplifiedLayerNormalization', [x, skip, g.weight(`${scope}.weight`, weight, [weight.length])], [out], { epsilon: { float: eps } }, MS);
	return out;
}

/** What attention adds to the residual (`blocks.l.hook_attn_out`, tensor `/blocks.l/attn/o`), from the normalised input. */
export function fusedAttention(ctx: FusedCtx, xn: string, l: number, w: LlamaWeights): string {
	const { g, c } = ctx;
	const L = w.layers[l];
	const s = `/blocks.${l}/attn`;
	const hs = headSize(c);
	const hp = paddedHeadSize(c);
	const kv = kvDim(c);
	const qWidth = c.nHeads * hp;
	const kvWidth = c.nKvHeads * hp;
	const rot = halvesFromPairs(hs, hp);
	const packed = concatColumns(
		[
			{ data: transposeTo(L.wq, c.dim, c.dim, rot, { width: qWidth }), cols: qWidth },
			{ data: transposeTo(L.wk, kv, c.dim, rot, { width: kvWidth }), cols: kvWidth },
			{ data: transposeTo(L.wv, kv, c.dim, padHeads(hs, hp), { width: kvWidth }), cols: kvWidth }
		],
		c.dim
	);
	const qkv = g.op('MatMul', [xn, g.weight(`${s}/qkv.weight`, packed, [c.dim, qWidth + 2 * kvWidth])], {}, `${s}/qkv`);
	const heads = g.fresh(`${s}/gqa`);
	g.node(
		'GroupQueryAttention',
		[qkv, '', '', pastKeyName(l), pastValueName(l), ctx.seqlensK, ctx.totalSeqLen, ctx.cosCache, ctx.sinCache],
		[heads, presentKeyName(l), presentValueName(l)],
		{ num_heads: c.nHeads, kv_num_heads: c.nKvHeads, scale: { float: 1 / Math.sqrt(hs) }, do_rotary: 1, rotary_interleaved: 0, local_window_size: -1 },
		MS
	);
	const wo = transposeTo(L.wo, c.dim, c.dim, undefined, { rowOf: padHeads(hs, hp), height: qWidth });
	return g.op('MatMul', [heads, g.weight(`${s}/o.weight`, wo, [qWidth, c.dim])], {}, `${s}/o`);
}

/** What the MLP adds (`blocks.l.hook_mlp_out`, tensor `/blocks.l/mlp/down`), from its normalised input. */
export function fusedFeedForward(ctx: FusedCtx, m: string, l: number, w: LlamaWeights): string {
	const { g, c } = ctx;
	const L = w.layers[l];
	const s = `/blocks.${l}/mlp`;
	const proj = (weight: Float32Array, name: string) =>
		g.op('MatMul', [m, g.weight(`${s}/${name}.weight`, transposeTo(weight, c.hiddenDim, c.dim), [c.dim, c.hiddenDim])], {}, `${s}/${name}`);
	const gate = proj(L.w1, 'gate');
	const up = proj(L.w3, 'up');
	const silu = g.fresh(`${s}/silu`);
	g.node('QuickGelu', [gate], [silu], { alpha: { float: 1 } }, MS);
	const act = g.op('Mul', [silu, up], {}, `${s}/act`);
	return g.op('MatMul', [act, g.weight(`${s}/down.weight`, transposeTo(L.w2, c.dim, c.hiddenDim), [c.hiddenDim, c.dim])], {}, `${s}/down`);
}

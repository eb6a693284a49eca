/**
 * The pieces of the fused llama2.c graph: onnxruntime's contrib operators, emitted as
 * onnxruntime-genai's model builder emits them, so each runs as one kernel on the wasm and WebGPU
 * execution providers instead of a dozen small ones.
 *   RMSNorm                    SimplifiedLayerNormalization (onnx domain, onnxruntime's)
 *   residual add + RMSNorm     com.microsoft SkipSimplifiedLayerNormalization (the sum is output 3)
 *   SwiGLU                     com.microsoft QuickGelu (alpha 1: x·sigmoid(x)) and Mul
 *   q, k, v / gate, up         one packed projection each
 * and attention in one of two ways:
 *   'ops' (default)  com.microsoft RotaryEmbedding (interleaved, as llama2.c rotates), then
 *                    grouped-query attention as two Einsums and a Softmax over the KV cache
 *                    [B,KV,P,hd], heads grouped in the einsum (no repeat, no transposes of q).
 *   'gqa'            com.microsoft GroupQueryAttention, do_rotary with cos/sin caches, packed QKV,
 *                    seqlens_k / total_sequence_length from the mask as the model builder computes them.
 *
 * Why two, measured on Chromium's SwiftShader (tests/gpu/llama2c-fused-webgpu.test.ts): its
 * GroupQueryAttention kernel costs 20–40 ms a layer for stories260K (four dispatches, flash-attention
 * shaped), more than the whole plain layer; and onnxruntime's CPU kernel refuses a head size that is
 * not a multiple of 16 ("head_size shall be a multiple of 16"), so for it heads are padded with zero
 * dims (stories260K: 8 -> 16; the scale stays 1/√hs; the KV cache becomes [B,KV,P,16]).
 *
 * Projections are Einsum 'bsk,nk->bsn' on llama2.c's own [out, in] rows, not MatMul: onnxruntime's
 * WebGPU MatMul tiles 8 rows × 32 columns per workgroup, so a one-token matvec wastes 7/8 of each and
 * costs 1–15 ms on SwiftShader, where Einsum's one-thread-per-output shader costs ~0.5 ms.
 */
import type { GraphBuilder } from '../onnx/graph-builder';
import { pastKeyName, pastValueName, presentKeyName, presentValueName } from '../segments';
import { headSize, kvDim, type LlamaConfig, type LlamaWeights } from './checkpoint';
import { concatColumns, halvesFromPairs, padHeads, transposeTo } from './layout';

/** x [B,S,in] times llama2.c's weight rows [out, in] (several, stacked: a packed projection). */
export function linear(g: GraphBuilder, x: string, rows: Float32Array[], inp: number, name: string): string {
	const out = rows.reduce((n, r) => n + r.length / inp, 0);
	const w = new Float32Array(out * inp);
	let at = 0;
	for (const r of rows) (w.set(r, at), (at += r.length));
	return g.op('Einsum', [x, g.weight(`${name}.weight`, w, [out, inp])], { equation: 'bsk,nk->bsn' }, name);
}

/** What the einsum attention reads besides q, k, v: the mask as a bias and llama2.c's RoPE caches. */
export interface OpsCtx {
	g: GraphBuilder;
	c: LlamaConfig;
	positionIds: string;
	bias: string; // [B,1,1,S,T]: 0 where allowed, -1e9 where masked
	cosCache: string; // [seqLen, hs/2]
	sinCache: string;
}

export function opsPositional(g: GraphBuilder, c: LlamaConfig): Omit<OpsCtx, 'g' | 'c'> {
	const positionIds = g.input('position_ids', 'int64', ['batch', 'seq']);
	const mask = g.input('attention_mask', 'int64', ['batch', 'total_seq']);
	// allowed[b,s,t] = (t <= position_ids[b,s]) * attention_mask[b,t]; bias = (allowed - 1) * 1e9
	const total = g.op('Gather', [g.op('Shape', [mask], {}, '/mask/shape'), g.scalar(1, 'int64')], { axis: 0 }, '/mask/total');
	const keyPos = g.op('Range', [g.scalar(0, 'int64'), total, g.scalar(1, 'int64')], {}, '/mask/key_pos');
	const causal = g.op(
		'LessOrEqual',
		[keyPos, g.op('Unsqueeze', [positionIds, g.constant([2])], {}, '/mask/query_pos')],
		{},
		'/mask/causal'
	);
	const padding = g.op('Unsqueeze', [g.op('Cast', [mask], { to: 1 }, '/mask/am_f'), g.constant([1])], {}, '/mask/am_b1t');
	const allowed = g.op('Mul', [g.op('Cast', [causal], { to: 1 }, '/mask/causal_f'), padding], {}, '/mask/allowed');
	const bias = g.op('Mul', [g.op('Sub', [allowed, g.scalar(1)], {}, '/mask/allowed_m1'), g.scalar(1e9)], {}, '/mask/bias_bst');
	const hs = headSize(c);
	const half = hs / 2;
	const cos = new Float32Array(c.seqLen * half);
	const sin = new Float32Array(c.seqLen * half);
	for (let pos = 0; pos < c.seqLen; pos++)
		for (let j = 0; j < half; j++) {
			const freq = 1 / Math.pow(c.ropeTheta, (2 * j) / hs); // llama2.c's, for the pair at dims 2j, 2j+1
			cos[pos * half + j] = Math.cos(pos * freq);
			sin[pos * half + j] = Math.sin(pos * freq);
		}
	return {
		positionIds,
		bias: g.op('Unsqueeze', [bias, g.constant([1, 2])], {}, '/mask/bias'),
		cosCache: g.weight('cos_cache', cos, [c.seqLen, half]),
		sinCache: g.weight('sin_cache', sin, [c.seqLen, half])
	};
}

/**
 * What attention adds to the residual (`blocks.l.hook_attn_out`, tensor `/blocks.l/attn/o`): RoPE by
 * RotaryEmbedding, then attention with q viewed as [B,S,KV,G,hd] (head h = kv·G + g reads kv head
 * kv, as llama2.c's h / kvMul), scores [B,KV,G,S,T] and their weighted values back in [B,S,H·hd]
 * order, so only the new keys and values are transposed (into the cache's [B,KV,S,hd]).
 */
export function opsAttention(ctx: OpsCtx, xn: string, l: number, w: LlamaWeights): string {
	const { g, c } = ctx;
	const L = w.layers[l];
	const s = `/blocks.${l}/attn`;
	const hs = headSize(c);
	const kv = kvDim(c);
	const KV = c.nKvHeads;
	const G = c.nHeads / KV;
	const qkv = linear(g, xn, [L.wq, L.wk, L.wv], c.dim, `${s}/qkv`);
	const [q, k, v] = g.opN('Split', [qkv, g.constant([c.dim, kv, kv])], 3, { axis: 2 }, `${s}/split`);
	const rope = (x: string, heads: number, name: string) => {
		const out = g.fresh(`${s}/${name}_rope`);
		g.node('RotaryEmbedding', [x, ctx.positionIds, ctx.cosCache, ctx.sinCache], [out], { interleaved: 1, num_heads: heads }, MS);
		return out;
	};
	// [B,S,KV·hd] -> [B,KV,S,hd], appended to the cache
	const toCache = (x: string, name: string) =>
		g.op(
			'Transpose',
			[g.op('Reshape', [x, g.constant([0, 0, KV, hs])], {}, `${s}/${name}_split`)],
			{ perm: [0, 2, 1, 3] },
			`${s}/${name}_heads`
		);
	const kAll = g.op('Concat', [pastKeyName(l), toCache(rope(k, KV, 'k'), 'k')], { axis: 2 }, `${s}/k_all`);
	const vAll = g.op('Concat', [pastValueName(l), toCache(v, 'v')], { axis: 2 }, `${s}/v_all`);
	g.alias(kAll, presentKeyName(l));
	g.alias(vAll, presentValueName(l));
	const q5 = g.op('Reshape', [rope(q, c.nHeads, 'q'), g.constant([0, 0, KV, G, hs])], {}, `${s}/q_grouped`);
	const qk = g.op('Einsum', [q5, kAll], { equation: 'bskgd,bktd->bkgst' }, `${s}/qk`);
	const scores = g.op('Add', [g.op('Mul', [qk, g.scalar(1 / Math.sqrt(hs))], {}, `${s}/scores`), ctx.bias], {}, `${s}/masked`);
	const probs = g.op('Softmax', [scores], { axis: -1 }, `${s}/probs`);
	const weighted = g.op('Einsum', [probs, vAll], { equation: 'bkgst,bktd->bskgd' }, `${s}/weighted`);
	const merged = g.op('Reshape', [weighted, g.constant([0, 0, c.dim])], {}, `${s}/ctx`);
	return linear(g, merged, [L.wo], c.dim, `${s}/o`);
}

const MS = 'com.microsoft';

/** The head size GroupQueryAttention and its KV cache use: llama2.c's, rounded up to a multiple of 16. */
export const paddedHeadSize = (c: LlamaConfig) => Math.ceil(headSize(c) / 16) * 16;

export interface GqaCtx {
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
export function gqaPositional(g: GraphBuilder, c: LlamaConfig): Omit<GqaCtx, 'g' | 'c'> {
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
	return {
		seqlensK,
		totalSeqLen,
		cosCache: g.weight('cos_cache', cos, [c.seqLen, half]),
		sinCache: g.weight('sin_cache', sin, [c.seqLen, half])
	};
}

/** RMSNorm of x; output `${scope}/out`. */
export function simplifiedNorm(g: GraphBuilder, x: string, weight: Float32Array, eps: number, scope: string): string {
	const out = g.fresh(`${scope}/out`);
	g.node('SimplifiedLayerNormalization', [x, g.weight(`${scope}.weight`, weight, [weight.length])], [out], {
		axis: -1,
		epsilon: { float: eps },
		stash_type: 1
	});
	return out;
}

/** RMSNorm(x + skip) and the sum x + skip (named `sumName`), in one kernel. */
export function skipNorm(g: GraphBuilder, x: string, skip: string, weight: Float32Array, eps: number, scope: string, sumName: string) {
	const out = g.fresh(`${scope}/out`);
	const sum = g.fresh(sumName);
	g.node(
		'SkipSimplifiedLayerNormalization',
		[x, skip, g.weight(`${scope}.weight`, weight, [weight.length])],
		[out, '', '', sum],
		{ epsilon: { float: eps } },
		MS
	);
	return { out, sum };
}

/** RMSNorm(x + skip) where the sum is not needed (the final norm). */
export function skipNormOnly(g: GraphBuilder, x: string, skip: string, weight: Float32Array, eps: number, scope: string): string {
	const out = g.fresh(`${scope}/out`);
	g.node(
		'SkipSimplifiedLayerNormalization',
		[x, skip, g.weight(`${scope}.weight`, weight, [weight.length])],
		[out],
		{ epsilon: { float: eps } },
		MS
	);
	return out;
}

/** What attention adds to the residual (`blocks.l.hook_attn_out`, tensor `/blocks.l/attn/o`), from the normalised input. */
export function gqaAttention(ctx: GqaCtx, xn: string, l: number, w: LlamaWeights): string {
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
		{
			num_heads: c.nHeads,
			kv_num_heads: c.nKvHeads,
			scale: { float: 1 / Math.sqrt(hs) },
			do_rotary: 1,
			rotary_interleaved: 0,
			local_window_size: -1
		},
		MS
	);
	const wo = transposeTo(L.wo, c.dim, c.dim, undefined, { rowOf: padHeads(hs, hp), height: qWidth });
	return g.op('MatMul', [heads, g.weight(`${s}/o.weight`, wo, [qWidth, c.dim])], {}, `${s}/o`);
}

/** What the MLP adds (`blocks.l.hook_mlp_out`, tensor `/blocks.l/mlp/down`), from its normalised input. */
export function fusedFeedForward(g: GraphBuilder, c: LlamaConfig, m: string, l: number, w: LlamaWeights): string {
	const L = w.layers[l];
	const s = `/blocks.${l}/mlp`;
	const [gate, up] = g.opN(
		'Split',
		[linear(g, m, [L.w1, L.w3], c.dim, `${s}/gate_up`), g.constant([c.hiddenDim, c.hiddenDim])],
		2,
		{ axis: 2 },
		`${s}/split`
	);
	const silu = g.fresh(`${s}/silu`);
	g.node('QuickGelu', [gate], [silu], { alpha: { float: 1 } }, MS);
	const act = g.op('Mul', [silu, up], {}, `${s}/act`);
	return linear(g, act, [L.w2], c.hiddenDim, `${s}/down`);
}

/**
 * Builds an fp32 ONNX decoder from llama2.c weights, in the Hugging Face decoder convention:
 *   input_ids [B,S], attention_mask [B,P+S], position_ids [B,S], past_key_values.{i}.key/value [B,KV,P,hd]
 *   -> logits [B,S,V], present.{i}.key/value [B,KV,P+S,hd]
 * optionally cut into a chain of segments at residual-stream boundaries (hook points).
 *
 * Only standard ONNX ops (opset 17) are used, so any execution provider runs it. The math is
 * llama2.c's: RMSNorm, RoPE on interleaved pairs, grouped-query attention, SwiGLU.
 */
import type { DecoderIo } from '../onnx/decoder-io';
import { GraphBuilder } from '../onnx/graph-builder';
import { boundaryName } from '../hooks';
import {
	pastKeyName, pastValueName, presentKeyName, presentValueName,
	type SegmentSpec, type SegmentedModel
} from '../segments';
import { headSize, kvDim, type LlamaConfig, type LlamaWeights } from './checkpoint';

/** [out, in] row-major -> [in, out], optionally swapping each column pair (2i, 2i+1) for RoPE. */
function transpose(w: Float32Array, out: number, inp: number, swapPairs = false): Float32Array {
	const t = new Float32Array(out * inp);
	for (let o = 0; o < out; o++) {
		const col = swapPairs ? o ^ 1 : o;
		for (let i = 0; i < inp; i++) t[i * out + col] = w[o * inp + i];
	}
	return t;
}

/**
 * RoPE as two elementwise products: rope(q) = q * cos + swap(q) * sinSigned, where swap exchanges
 * each pair and sinSigned = [-sin, +sin] per pair. swap(q) comes from a second projection whose
 * weight columns are pre-swapped, so no reshape or slice is needed. Tables: [seqLen, width].
 */
function ropeTables(c: LlamaConfig, width: number) {
	const hs = headSize(c);
	const cos = new Float32Array(c.seqLen * width);
	const sin = new Float32Array(c.seqLen * width);
	for (let pos = 0; pos < c.seqLen; pos++)
		for (let col = 0; col < width; col++) {
			const even = col & ~1;
			const freq = 1 / Math.pow(c.ropeTheta, (even % hs) / hs);
			cos[pos * width + col] = Math.cos(pos * freq);
			sin[pos * width + col] = (col & 1 ? 1 : -1) * Math.sin(pos * freq);
		}
	return { cos, sin };
}

interface Ctx {
	g: GraphBuilder;
	c: LlamaConfig;
	positionIds: string;
	attnBias: string; // [B,1,S,T]: 0 where allowed, -1e9 where masked
	ropeQ: { cos: string; sin: string }; // gathered: [B,S,dim]
	ropeK: { cos: string; sin: string }; // gathered: [B,S,kvDim]
}

function rmsnorm(g: GraphBuilder, x: string, weight: Float32Array, eps: number, scope: string): string {
	const w = g.weight(`${scope}.weight`, weight, [weight.length]);
	const ms = g.op('ReduceMean', [g.op('Mul', [x, x], {}, `${scope}/sq`)], { axes: [-1], keepdims: 1 }, `${scope}/mean_sq`);
	const inv = g.op('Div', [g.scalar(1), g.op('Sqrt', [g.op('Add', [ms, g.scalar(eps)], {}, `${scope}/add_eps`)], {}, `${scope}/rms`)], {}, `${scope}/inv_rms`);
	return g.op('Mul', [w, g.op('Mul', [inv, x], {}, `${scope}/scaled`)], {}, `${scope}/out`);
}

function attention(ctx: Ctx, x: string, l: number, w: LlamaWeights): string {
	const { g, c } = ctx;
	const L = w.layers[l];
	const s = `/blocks.${l}/attn`;
	const hs = headSize(c);
	const kv = kvDim(c);
	const H = c.nHeads;
	const KV = c.nKvHeads;
	const xn = rmsnorm(g, x, L.rmsAtt, c.normEps, `/blocks.${l}/ln1`);
	const proj = (weight: Float32Array, out: number, name: string, swap = false) =>
		g.op('MatMul', [xn, g.weight(`${s}/${name}.weight`, transpose(weight, out, c.dim, swap), [c.dim, out])], {}, `${s}/${name}`);
	const rope = (a: string, aSwapped: string, t: { cos: string; sin: string }, name: string) =>
		g.op('Add', [g.op('Mul', [a, t.cos], {}, `${s}/${name}_cos`), g.op('Mul', [aSwapped, t.sin], {}, `${s}/${name}_sin`)], {}, `${s}/${name}_rope`);
	const q = rope(proj(L.wq, c.dim, 'q'), proj(L.wq, c.dim, 'q_swap', true), ctx.ropeQ, 'q');
	const k = rope(proj(L.wk, kv, 'k'), proj(L.wk, kv, 'k_swap', true), ctx.ropeK, 'k');
	const v = proj(L.wv, kv, 'v');
	// [B,S,heads*hd] -> [B,heads,S,hd]
	const heads = (a: string, n: number, name: string) =>
		g.op('Transpose', [g.op('Reshape', [a, g.constant([0, 0, n, hs])], {}, `${s}/${name}_split`)], { perm: [0, 2, 1, 3] }, `${s}/${name}_heads`);
	const qh = heads(q, H, 'q');
	const kAll = g.op('Concat', [pastKeyName(l), heads(k, KV, 'k')], { axis: 2 }, `${s}/k_all`);
	const vAll = g.op('Concat', [pastValueName(l), heads(v, KV, 'v')], { axis: 2 }, `${s}/v_all`);
	g.alias(kAll, presentKeyName(l));
	g.alias(vAll, presentValueName(l));
	// Grouped-query attention: heads kv*G..kv*G+G-1 share kv head kv, so view q as [B,KV,G*S,hd].
	const qGrouped = g.op('Reshape', [qh, g.constant([0, KV, -1, hs])], {}, `${s}/q_grouped`);
	const kT = g.op('Transpose', [kAll], { perm: [0, 1, 3, 2] }, `${s}/k_t`);
	const scores = g.op('Div', [g.op('MatMul', [qGrouped, kT], {}, `${s}/qk`), g.scalar(Math.sqrt(hs))], {}, `${s}/scores`);
	const perHead = g.op('Reshape', [scores, g.constant([0, H, -1, 0])], {}, `${s}/scores_heads`); // [B,H,S,T]
	const probs = g.op('Softmax', [g.op('Add', [perHead, ctx.attnBias], {}, `${s}/masked`)], { axis: -1 }, `${s}/probs`);
	const ctxGrouped = g.op('MatMul', [g.op('Reshape', [probs, g.constant([0, KV, -1, 0])], {}, `${s}/probs_grouped`), vAll], {}, `${s}/weighted`);
	const merged = g.op('Reshape', [
		g.op('Transpose', [g.op('Reshape', [ctxGrouped, g.constant([0, H, -1, hs])], {}, `${s}/ctx_heads`)], { perm: [0, 2, 1, 3] }, `${s}/ctx_t`),
		g.constant([0, 0, c.dim])
	], {}, `${s}/ctx`);
	const out = g.op('MatMul', [merged, g.weight(`${s}/o.weight`, transpose(L.wo, c.dim, c.dim), [c.dim, c.dim])], {}, `${s}/o`);
	return g.op('Add', [x, out], {}, `/blocks.${l}/resid_mid`);
}

function feedForward(ctx: Ctx, x: string, l: number, w: LlamaWeights): string {
	const { g, c } = ctx;
	const L = w.layers[l];
	const s = `/blocks.${l}/mlp`;
	const xn = rmsnorm(g, x, L.rmsFfn, c.normEps, `/blocks.${l}/ln2`);
	const gate = g.op('MatMul', [xn, g.weight(`${s}/gate.weight`, transpose(L.w1, c.hiddenDim, c.dim), [c.dim, c.hiddenDim])], {}, `${s}/gate`);
	const up = g.op('MatMul', [xn, g.weight(`${s}/up.weight`, transpose(L.w3, c.hiddenDim, c.dim), [c.dim, c.hiddenDim])], {}, `${s}/up`);
	const silu = g.op('Mul', [gate, g.op('Sigmoid', [gate], {}, `${s}/sigmoid`)], {}, `${s}/silu`);
	const act = g.op('Mul', [silu, up], {}, `${s}/act`);
	const down = g.op('MatMul', [act, g.weight(`${s}/down.weight`, transpose(L.w2, c.dim, c.hiddenDim), [c.hiddenDim, c.dim])], {}, `${s}/down`);
	return g.op('Add', [x, down], {}, `/blocks.${l}/resid_post`);
}

/** Position-dependent inputs shared by every layer of a segment: the mask bias and RoPE tables. */
function positionalContext(g: GraphBuilder, c: LlamaConfig): Omit<Ctx, 'g' | 'c'> {
	const positionIds = g.input('position_ids', 'int64', ['batch', 'seq']);
	const attentionMask = g.input('attention_mask', 'int64', ['batch', 'total_seq']);
	// allowed[b,s,t] = (t <= position_ids[b,s]) * attention_mask[b,t]; bias = (allowed - 1) * 1e9
	const total = g.op('Gather', [g.op('Shape', [attentionMask], {}, '/mask/shape'), g.scalar(1, 'int64')], { axis: 0 }, '/mask/total');
	const keyPos = g.op('Range', [g.scalar(0, 'int64'), total, g.scalar(1, 'int64')], {}, '/mask/key_pos');
	const causal = g.op('LessOrEqual', [keyPos, g.op('Unsqueeze', [positionIds, g.constant([2])], {}, '/mask/query_pos')], {}, '/mask/causal');
	const paddingF = g.op('Unsqueeze', [g.op('Cast', [attentionMask], { to: 1 }, '/mask/am_f'), g.constant([1])], {}, '/mask/am_b1t');
	const allowed = g.op('Mul', [g.op('Cast', [causal], { to: 1 }, '/mask/causal_f'), paddingF], {}, '/mask/allowed');
	const bias = g.op('Mul', [g.op('Sub', [allowed, g.scalar(1)], {}, '/mask/allowed_m1'), g.scalar(1e9)], {}, '/mask/bias_bst');
	const attnBias = g.op('Unsqueeze', [bias, g.constant([1])], {}, '/mask/bias');
	const gather = (table: Float32Array, width: number, name: string) =>
		g.op('Gather', [g.weight(`/rope/${name}_table`, table, [c.seqLen, width]), positionIds], { axis: 0 }, `/rope/${name}`);
	const q = ropeTables(c, c.dim);
	const k = ropeTables(c, kvDim(c));
	return {
		positionIds,
		attnBias,
		ropeQ: { cos: gather(q.cos, c.dim, 'q_cos'), sin: gather(q.sin, c.dim, 'q_sin') },
		ropeK: { cos: gather(k.cos, kvDim(c), 'k_cos'), sin: gather(k.sin, kvDim(c), 'k_sin') }
	};
}

/**
 * Builds the model cut at the given boundaries (0 < b <= nLayers; boundary b is the input of layer b,
 * i.e. `blocks.{b}.hook_resid_pre`; b = nLayers is the last `hook_resid_post`). No cuts: one graph.
 */
export function buildLlamaOnnx(w: LlamaWeights, cuts: number[] = []): SegmentedModel {
	const c = w.config;
	const sorted = [...new Set(cuts)].sort((a, b) => a - b);
	for (const b of sorted)
		if (!Number.isInteger(b) || b < 0 || b > c.nLayers) throw new Error(`cut ${b} is outside 0..${c.nLayers}`);
	const edges = [-1, ...sorted, Infinity]; // -1: token ids in; Infinity: logits out
	const segments: SegmentSpec[] = [];
	for (let i = 0; i + 1 < edges.length; i++) {
		const from = edges[i];
		const to = edges[i + 1];
		const first = Math.max(from, 0);
		const end = Math.min(to, c.nLayers);
		const g = new GraphBuilder(`loupe-llama2c-segment-${i}`);
		let x: string;
		const residualIn = from < 0 ? undefined : boundaryName(from, c.nLayers);
		if (residualIn === undefined) {
			const ids = g.input('input_ids', 'int64', ['batch', 'seq']);
			x = g.op('Gather', [g.weight('/embed.weight', w.tokenEmbedding, [c.vocabSize, c.dim]), ids], { axis: 0 }, '/embed');
		} else {
			x = g.input(residualIn, 'float32', ['batch', 'seq', c.dim]);
		}
		// Every segment takes the same positional inputs, so the engine feeds them uniformly.
		const pos = positionalContext(g, c);
		const ctx: Ctx = { g, c, ...pos };
		const hd = headSize(c);
		for (let l = first; l < end; l++) {
			g.input(pastKeyName(l), 'float32', ['batch', c.nKvHeads, 'past_seq', hd]);
			g.input(pastValueName(l), 'float32', ['batch', c.nKvHeads, 'past_seq', hd]);
		}
		for (let l = first; l < end; l++) x = feedForward(ctx, attention(ctx, x, l, w), l, w);
		let residualOut: string | undefined;
		if (to === Infinity) {
			const xn = rmsnorm(g, x, w.rmsFinal, c.normEps, '/ln_final');
			const cls = g.weight('/lm_head.weight', w.classifier, [c.vocabSize, c.dim]);
			const clsT = g.op('Transpose', [cls], { perm: [1, 0] }, '/lm_head.weight_t');
			g.alias(g.op('MatMul', [xn, clsT], {}, '/lm_head'), 'logits');
			g.output('logits', 'float32', ['batch', 'seq', c.vocabSize]);
		} else {
			residualOut = boundaryName(to, c.nLayers);
			g.alias(x, residualOut);
			g.output(residualOut, 'float32', ['batch', 'seq', c.dim]);
		}
		for (let l = first; l < end; l++) {
			g.output(presentKeyName(l), 'float32', ['batch', c.nKvHeads, 'total_seq', hd]);
			g.output(presentValueName(l), 'float32', ['batch', c.nKvHeads, 'total_seq', hd]);
		}
		const inputNames = [residualIn ?? 'input_ids', 'position_ids', 'attention_mask'];
		const outputNames = [residualOut ?? 'logits'];
		for (let l = first; l < end; l++) {
			inputNames.push(pastKeyName(l), pastValueName(l));
			outputNames.push(presentKeyName(l), presentValueName(l));
		}
		segments.push({ index: i, layers: [first, end], residualIn, residualOut, inputNames, outputNames, bytes: g.toBytes() });
	}
	const kvDims = ['batch', c.nKvHeads, 'past_seq', headSize(c)];
	const int = (name: string, dims: string[]) => ({ name, dtype: 'int64', dims });
	const io: DecoderIo = {
		inputIds: int('input_ids', ['batch', 'seq']),
		positionIds: int('position_ids', ['batch', 'seq']),
		attentionMask: int('attention_mask', ['batch', 'total_seq']),
		zeros: [],
		kv: Array.from({ length: c.nLayers }, (_, l) => [
			{ past: pastKeyName(l), present: presentKeyName(l), dtype: 'float32', dims: kvDims, seqAxis: 2 },
			{ past: pastValueName(l), present: presentValueName(l), dtype: 'float32', dims: kvDims, seqAxis: 2 }
		]).flat(),
		logits: 'logits'
	};
	return {
		shape: { nLayers: c.nLayers, dModel: c.dim, vocabSize: c.vocabSize, maxSeqLen: c.seqLen },
		io,
		cuts: sorted,
		segments
	};
}

/**
 * Builds an fp32 ONNX decoder from llama2.c weights, in the Hugging Face decoder convention:
 *   input_ids [B,S], attention_mask [B,P+S], position_ids [B,S], past_key_values.{i}.key/value [B,KV,P,hd]
 *   -> logits [B,S,V], present.{i}.key/value [B,KV,P+S,hd]
 * optionally cut into a chain of segments at hook points: residual-stream boundaries and the hooks
 * inside each layer (attn_out, mlp_in, mlp_out).
 *
 * Two graphs of the same math (llama2.c's: RMSNorm, RoPE on interleaved pairs, grouped-query
 * attention, SwiGLU):
 * - fused (`fused: true`): onnxruntime's contrib operators, one kernel each (fused-ops.ts), far fewer
 *   and cheaper kernels per token. A residual add and the next RMSNorm are one
 *   SkipSimplifiedLayerNormalization, except across a cut, where the segment writes the plain sum
 *   and the next one normalises the (possibly edited) residual it reads.
 * - plain (the default): standard opset-17 ops only, so any execution provider runs it; the peer
 *   the fused graph is measured against.
 */
import type { DecoderIo } from '../onnx/decoder-io';
import { GraphBuilder } from '../onnx/graph-builder';
import { boundaryName, canonicalHook, hookSite, layersBetween, type HookName } from '../hooks';
import { pastKeyName, pastValueName, presentKeyName, presentValueName, type SegmentSpec, type SegmentedModel } from '../segments';
import { headSize, kvDim, type LlamaConfig, type LlamaWeights } from './checkpoint';
import {
	fusedFeedForward,
	gqaAttention,
	gqaPositional,
	linear,
	opsAttention,
	opsPositional,
	paddedHeadSize,
	simplifiedNorm,
	skipNorm,
	skipNormOnly,
	type GqaCtx,
	type OpsCtx
} from './fused-ops';
import { transposeTo } from './layout';

export interface BuildOptions {
	/** onnxruntime's fused contrib operators, or standard ops only. */
	fused?: boolean;
	/**
	 * The fused graph's attention (fused-ops.ts): RotaryEmbedding + Einsum ('ops', the default, the
	 * fast one on a software adapter), or GroupQueryAttention ('gqa', as the model builder emits it;
	 * its KV cache has heads padded to a multiple of 16, [B,KV,P,16] for stories260K).
	 */
	attention?: 'ops' | 'gqa';
}

/** [out, in] row-major -> [in, out], optionally swapping each column pair (2i, 2i+1) for RoPE. */
const transpose = (w: Float32Array, out: number, inp: number, swapPairs = false) =>
	transposeTo(w, out, inp, swapPairs ? (o) => o ^ 1 : undefined);

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
	const inv = g.op(
		'Div',
		[g.scalar(1), g.op('Sqrt', [g.op('Add', [ms, g.scalar(eps)], {}, `${scope}/add_eps`)], {}, `${scope}/rms`)],
		{},
		`${scope}/inv_rms`
	);
	return g.op('Mul', [w, g.op('Mul', [inv, x], {}, `${scope}/scaled`)], {}, `${scope}/out`);
}

/** What attention adds to the residual (`blocks.l.hook_attn_out`). */
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
		g.op(
			'Add',
			[g.op('Mul', [a, t.cos], {}, `${s}/${name}_cos`), g.op('Mul', [aSwapped, t.sin], {}, `${s}/${name}_sin`)],
			{},
			`${s}/${name}_rope`
		);
	const q = rope(proj(L.wq, c.dim, 'q'), proj(L.wq, c.dim, 'q_swap', true), ctx.ropeQ, 'q');
	const k = rope(proj(L.wk, kv, 'k'), proj(L.wk, kv, 'k_swap', true), ctx.ropeK, 'k');
	const v = proj(L.wv, kv, 'v');
	// [B,S,heads*hd] -> [B,heads,S,hd]
	const heads = (a: string, n: number, name: string) =>
		g.op(
			'Transpose',
			[g.op('Reshape', [a, g.constant([0, 0, n, hs])], {}, `${s}/${name}_split`)],
			{ perm: [0, 2, 1, 3] },
			`${s}/${name}_heads`
		);
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
	const ctxGrouped = g.op(
		'MatMul',
		[g.op('Reshape', [probs, g.constant([0, KV, -1, 0])], {}, `${s}/probs_grouped`), vAll],
		{},
		`${s}/weighted`
	);
	const merged = g.op(
		'Reshape',
		[
			g.op(
				'Transpose',
				[g.op('Reshape', [ctxGrouped, g.constant([0, H, -1, hs])], {}, `${s}/ctx_heads`)],
				{ perm: [0, 2, 1, 3] },
				`${s}/ctx_t`
			),
			g.constant([0, 0, c.dim])
		],
		{},
		`${s}/ctx`
	);
	return g.op('MatMul', [merged, g.weight(`${s}/o.weight`, transpose(L.wo, c.dim, c.dim), [c.dim, c.dim])], {}, `${s}/o`);
}

/** What the MLP adds to the residual (`blocks.l.hook_mlp_out`), from its normalised input (`hook_mlp_in`). */
function feedForward(ctx: Ctx, xn: string, l: number, w: LlamaWeights): string {
	const { g, c } = ctx;
	const L = w.layers[l];
	const s = `/blocks.${l}/mlp`;
	const gate = g.op(
		'MatMul',
		[xn, g.weight(`${s}/gate.weight`, transpose(L.w1, c.hiddenDim, c.dim), [c.dim, c.hiddenDim])],
		{},
		`${s}/gate`
	);
	const up = g.op('MatMul', [xn, g.weight(`${s}/up.weight`, transpose(L.w3, c.hiddenDim, c.dim), [c.dim, c.hiddenDim])], {}, `${s}/up`);
	const silu = g.op('Mul', [gate, g.op('Sigmoid', [gate], {}, `${s}/sigmoid`)], {}, `${s}/silu`);
	const act = g.op('Mul', [silu, up], {}, `${s}/act`);
	return g.op('MatMul', [act, g.weight(`${s}/down.weight`, transpose(L.w2, c.dim, c.hiddenDim), [c.hiddenDim, c.dim])], {}, `${s}/down`);
}

/** Position-dependent inputs shared by every layer of a segment: the mask bias and RoPE tables. */
function positionalContext(g: GraphBuilder, c: LlamaConfig): Omit<Ctx, 'g' | 'c'> {
	const positionIds = g.input('position_ids', 'int64', ['batch', 'seq']);
	const attentionMask = g.input('attention_mask', 'int64', ['batch', 'total_seq']);
	// allowed[b,s,t] = (t <= position_ids[b,s]) * attention_mask[b,t]; bias = (allowed - 1) * 1e9
	const total = g.op('Gather', [g.op('Shape', [attentionMask], {}, '/mask/shape'), g.scalar(1, 'int64')], { axis: 0 }, '/mask/total');
	const keyPos = g.op('Range', [g.scalar(0, 'int64'), total, g.scalar(1, 'int64')], {}, '/mask/key_pos');
	const causal = g.op(
		'LessOrEqual',
		[keyPos, g.op('Unsqueeze', [positionIds, g.constant([2])], {}, '/mask/query_pos')],
		{},
		'/mask/causal'
	);
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
 * Where a segment starts or ends, as a site number (hooks.ts `hookSite`): 4l is resid_pre l, 4l+1
 * attn_out l, 4l+2 mlp_in l, 4l+3 mlp_out l, 4·nLayers the last resid_post. Between sites the
 * block computes, in order: attention (4l → 4l+1), the attention add and the MLP norm (→ 4l+2), the
 * MLP (→ 4l+3), the MLP add (→ 4(l+1)).
 *
 * A segment that starts inside a layer also needs the tensor the layer's next residual add reads:
 * resid_pre l (after an attn_out cut: the resid_pre hook where that is cut too, so an edit there
 * counts) or the attention add's sum (after an mlp_in or mlp_out cut). The segment that computes it
 * hands it on as `loupe/blocks.l.resid_pre` / `loupe/blocks.l.resid_mid`; the runner's pool keeps it.
 */
const carriedPre = (l: number) => `loupe/blocks.${l}.resid_pre`;
const carriedMid = (l: number) => `loupe/blocks.${l}.resid_mid`;

/**
 * Builds the model cut at the given hooks: numbers are residual boundaries (0 ≤ b ≤ nLayers;
 * boundary b is `blocks.{b}.hook_resid_pre`, nLayers the last `hook_resid_post`), strings any hook
 * name (`blocks.1.hook_mlp_in`). No cuts: one graph.
 */
export function buildLlamaOnnx(
	w: LlamaWeights,
	cuts: (number | HookName)[] = [],
	{ fused = false, attention: attentionKind = 'ops' }: BuildOptions = {}
): SegmentedModel {
	const c = w.config;
	const n = c.nLayers;
	const siteOf = (cut: number | HookName) => {
		if (typeof cut === 'number') {
			if (!Number.isInteger(cut) || cut < 0 || cut > n) throw new Error(`cut ${cut} is outside 0..${n}`);
			return 4 * cut;
		}
		return hookSite(cut, n);
	};
	const sites = [...new Set(cuts.map(siteOf))].sort((a, b) => a - b);
	const nameOf = (site: number) =>
		site % 4 === 0
			? boundaryName(site / 4, n)
			: canonicalHook(`blocks.${Math.floor(site / 4)}.hook_${['', 'attn_out', 'mlp_in', 'mlp_out'][site % 4]}`, n);
	const isCut = new Set(sites);
	const edges = [-1, ...sites, Infinity]; // -1: token ids in; Infinity: logits out
	const gqa = fused && attentionKind === 'gqa';
	const hd = gqa ? paddedHeadSize(c) : headSize(c); // the KV cache's head dim
	const segments: SegmentSpec[] = [];
	for (let i = 0; i + 1 < edges.length; i++) {
		const from = edges[i];
		const to = edges[i + 1];
		const g = new GraphBuilder(`loupe-llama2c${fused ? '-fused' : ''}-segment-${i}`);
		const residualIn = from < 0 ? undefined : nameOf(from);
		const residualOut = to === Infinity ? undefined : nameOf(to);
		const inputNames: string[] = [];
		const outputNames: string[] = [];
		const input = (name: string) => (inputNames.push(name), g.input(name, 'float32', ['batch', 'seq', c.dim]));
		// The block's live tensors: x (resid_pre), a (attn_out), h (resid_mid), m (mlp_in), f (mlp_out).
		let x = '',
			a = '',
			h = '',
			m = '',
			f = '';
		let site = Math.max(from, 0);
		const l0 = Math.floor(site / 4);
		if (from < 0) {
			inputNames.push('input_ids');
			const ids = g.input('input_ids', 'int64', ['batch', 'seq']);
			x = g.op('Gather', [g.weight('/embed.weight', w.tokenEmbedding, [c.vocabSize, c.dim]), ids], { axis: 0 }, '/embed');
		} else if (from % 4 === 0) x = input(residualIn!);
		else if (from % 4 === 1) {
			a = input(residualIn!);
			x = input(isCut.has(4 * l0) ? boundaryName(l0, n) : carriedPre(l0));
		} else {
			from % 4 === 2 ? (m = input(residualIn!)) : (f = input(residualIn!));
			h = input(carriedMid(l0));
		}
		// Every segment takes the same positional inputs, so the engine feeds them uniformly (the
		// GroupQueryAttention graph declares position_ids too, unread: the kernel derives positions from the mask).
		inputNames.push('position_ids', 'attention_mask');
		let ctx!: Ctx;
		let gctx!: GqaCtx;
		let octx!: OpsCtx;
		if (!fused) ctx = { g, c, ...positionalContext(g, c) };
		else if (gqa) {
			g.input('position_ids', 'int64', ['batch', 'seq']);
			gctx = { g, c, ...gqaPositional(g, c) };
		} else octx = { g, c, ...opsPositional(g, c) };
		// Fused: the MLP's add waits (x = h + f) to become the next norm's skip input, unless a cut or
		// the end of the segment comes first.
		let pending: { h: string; f: string; l: number } | null = null;
		const settle = () => {
			if (pending) x = g.op('Add', [pending.h, pending.f], {}, `/blocks.${pending.l}/resid_post`);
			pending = null;
		};
		const end = Math.min(to, 4 * n);
		const attnLayers: number[] = [];
		let midHere = -1; // the layer whose resid_mid this segment computes
		for (; site < end; site++) {
			const l = Math.floor(site / 4);
			const L = w.layers[l];
			switch (site % 4) {
				case 0:
					attnLayers.push(l);
					g.input(pastKeyName(l), 'float32', ['batch', c.nKvHeads, 'past_seq', hd]);
					g.input(pastValueName(l), 'float32', ['batch', c.nKvHeads, 'past_seq', hd]);
					if (!fused) a = attention(ctx, x, l, w);
					else {
						let xn: string;
						if (pending) {
							({ out: xn, sum: x } = skipNorm(
								g,
								pending.h,
								pending.f,
								L.rmsAtt,
								c.normEps,
								`/blocks.${l}/ln1`,
								`/blocks.${pending.l}/resid_post`
							));
							pending = null;
						} else xn = simplifiedNorm(g, x, L.rmsAtt, c.normEps, `/blocks.${l}/ln1`);
						a = gqa ? gqaAttention(gctx, xn, l, w) : opsAttention(octx, xn, l, w);
					}
					break;
				case 1:
					midHere = l;
					if (fused) ({ out: m, sum: h } = skipNorm(g, x, a, L.rmsFfn, c.normEps, `/blocks.${l}/ln2`, `/blocks.${l}/resid_mid`));
					else {
						h = g.op('Add', [x, a], {}, `/blocks.${l}/resid_mid`);
						m = rmsnorm(g, h, L.rmsFfn, c.normEps, `/blocks.${l}/ln2`);
					}
					break;
				case 2:
					f = fused ? fusedFeedForward(g, c, m, l, w) : feedForward(ctx, m, l, w);
					break;
				case 3:
					if (fused) pending = { h, f, l };
					else x = g.op('Add', [h, f], {}, `/blocks.${l}/resid_post`);
					break;
			}
		}
		const out = (t: string, name: string) => {
			g.alias(t, name);
			g.output(name, 'float32', ['batch', 'seq', c.dim]);
			outputNames.push(name);
		};
		if (to === Infinity && fused) {
			const p = pending as { h: string; f: string } | null;
			const xn = p
				? skipNormOnly(g, p.h, p.f, w.rmsFinal, c.normEps, '/ln_final')
				: simplifiedNorm(g, x, w.rmsFinal, c.normEps, '/ln_final');
			g.alias(linear(g, xn, [w.classifier], c.dim, '/lm_head'), 'logits');
			g.output('logits', 'float32', ['batch', 'seq', c.vocabSize]);
			outputNames.push('logits');
		} else if (to === Infinity) {
			const xn = rmsnorm(g, x, w.rmsFinal, c.normEps, '/ln_final');
			const cls = g.weight('/lm_head.weight', w.classifier, [c.vocabSize, c.dim]);
			const clsT = g.op('Transpose', [cls], { perm: [1, 0] }, '/lm_head.weight_t');
			g.alias(g.op('MatMul', [xn, clsT], {}, '/lm_head'), 'logits');
			g.output('logits', 'float32', ['batch', 'seq', c.vocabSize]);
			outputNames.push('logits');
		} else {
			settle(); // a cut: the next segment reads (and may edit) the plain sum
			out([x, a, m, f][to % 4], residualOut!);
			const l = Math.floor(to / 4);
			// What the next residual add needs, where no hook carries it.
			if (to % 4 === 1 && !isCut.has(4 * l)) out(x, carriedPre(l));
			if (to % 4 >= 2 && midHere === l) out(h, carriedMid(l));
		}
		for (const l of attnLayers) {
			g.output(presentKeyName(l), 'float32', ['batch', c.nKvHeads, 'total_seq', hd]);
			g.output(presentValueName(l), 'float32', ['batch', c.nKvHeads, 'total_seq', hd]);
			inputNames.push(pastKeyName(l), pastValueName(l));
			outputNames.push(presentKeyName(l), presentValueName(l));
		}
		segments.push({
			index: i,
			layers: layersBetween(residualIn, residualOut, n),
			residualIn,
			residualOut,
			inputNames,
			outputNames,
			bytes: g.toBytes()
		});
	}
	const kvDims = ['batch', c.nKvHeads, 'past_seq', hd];
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
		cuts: sites.filter((s) => s % 4 === 0).map((s) => s / 4),
		cutHooks: sites.map(nameOf),
		segments
	};
}

/**
 * Tiny decoders with random weights, written with Loupe's own ONNX builder in the shapes and
 * styles exporters produce, so graph surgery can be checked on each:
 *
 *   gpt2   token + learned position embedding, LayerNorm, GELU MLP, biases
 *   llama  token embedding, RMSNorm, SwiGLU MLP
 *   gemma  token embedding × √d, RMSNorm also on each branch's output ("sandwich" norms), GeGLU MLP
 *
 *   unfused  norms written out in plain ops and residual adds as `Add`, as torch.onnx.export does
 *   fused    residual add + next norm as onnxruntime's SkipLayerNormalization /
 *            SkipSimplifiedLayerNormalization (the sum is output 3; the final one leaves it unnamed),
 *            the first norm as LayerNormalization / SimplifiedLayerNormalization, as ORT's
 *            optimizer and the model builder write them
 *   opset23  the standard ops of ONNX opset 23: attention as one `Attention` node (projected q, k, v,
 *            the additive mask, past key/value in, present key/value out), norms as
 *            `RMSNormalization` / `LayerNormalization`, RoPE (llama, gemma) as `RotaryEmbedding` on
 *            q and k; token ids reach the embedding through Cast, Unsqueeze, Squeeze, Reshape and
 *            Flatten, as torch's `input_ids.view(-1, S)` leaves them
 *
 * Attention in the other styles is plain ops with a KV cache in the Hugging Face layout
 * (`past_key_values.{l}.key` [B, H, P, Dh] → `present.{l}.key`); positions matter only through the
 * causal mask (no RoPE: the surgery does not look inside attention). `lmHead: false` writes a base
 * model whose output is the final norm's hidden state (`last_hidden_state`), not logits.
 */
import { GraphBuilder } from './graph-builder';
import { seededRandom } from '../../sample/prng';

export type TinyArch = 'gpt2' | 'llama' | 'gemma';
export type TinyStyle = 'unfused' | 'fused' | 'opset23';

export interface TinyDecoderOptions {
	arch: TinyArch;
	style: TinyStyle;
	layers?: number;
	dModel?: number;
	heads?: number;
	vocab?: number;
	seed?: number;
	/** False: no LM head, the graph outputs the final norm's hidden state (a base-model export). */
	lmHead?: boolean;
}

export function buildTinyDecoder(o: TinyDecoderOptions): Uint8Array {
	const L = o.layers ?? 2;
	const d = o.dModel ?? 16;
	const H = o.heads ?? 2;
	const Dh = d / H;
	const V = o.vocab ?? 64;
	const rms = o.arch !== 'gpt2';
	const fused = o.style === 'fused';
	const std = o.style === 'opset23';
	const random = seededRandom(o.seed ?? 7);
	const g = new GraphBuilder(`tiny-${o.arch}-${o.style}`);
	const w = (name: string, dims: number[], scale = 1 / Math.sqrt(dims[0])) =>
		g.weight(
			name,
			Float32Array.from({ length: dims.reduce((a, b) => a * b, 1) }, () => (random() * 2 - 1) * scale),
			dims
		);
	const ones = (name: string) =>
		g.weight(
			name,
			Float32Array.from({ length: d }, () => 1 + (random() - 0.5) * 0.2),
			[d]
		);
	const zeros = (name: string) =>
		g.weight(
			name,
			Float32Array.from({ length: d }, () => (random() - 0.5) * 0.1),
			[d]
		);
	const eps = 1e-5;

	const ids = g.input('input_ids', 'int64', ['batch', 'seq']);
	const mask = g.input('attention_mask', 'int64', ['batch', 'total_seq']);
	const positions = g.input('position_ids', 'int64', ['batch', 'seq']);

	// Causal mask bias [B, 1, S, T] from position_ids and attention_mask.
	const total = g.op('Gather', [g.op('Shape', [mask]), g.scalar(1, 'int64')], { axis: 0 });
	const keyPos = g.op('Range', [g.scalar(0, 'int64'), total, g.scalar(1, 'int64')]);
	const causal = g.op('Cast', [g.op('LessOrEqual', [keyPos, g.op('Unsqueeze', [positions, g.constant([2])])])], { to: 1 });
	const padding = g.op('Unsqueeze', [g.op('Cast', [mask], { to: 1 }), g.constant([1])]);
	const allowed = g.op('Mul', [causal, padding]);
	const bias = g.op('Unsqueeze', [g.op('Mul', [g.op('Sub', [allowed, g.scalar(1)]), g.scalar(1e9)]), g.constant([1])]);

	// Plain-op norms, as torch exports them.
	const plainNorm = (x: string, s: string, gamma: string, beta?: string) => {
		if (rms) {
			const ms = g.op('ReduceMean', [g.op('Pow', [x, g.scalar(2)], {}, `${s}/pow`)], { axes: [-1], keepdims: 1 }, `${s}/ms`);
			const y = g.op('Div', [x, g.op('Sqrt', [g.op('Add', [ms, g.scalar(eps)])])], {}, `${s}/div`);
			return g.op('Mul', [y, gamma], {}, `${s}/scale`);
		}
		const mean = g.op('ReduceMean', [x], { axes: [-1], keepdims: 1 }, `${s}/mean`);
		const c = g.op('Sub', [x, mean], {}, `${s}/centred`);
		const v = g.op('ReduceMean', [g.op('Pow', [c, g.scalar(2)])], { axes: [-1], keepdims: 1 }, `${s}/var`);
		const y = g.op('Div', [c, g.op('Sqrt', [g.op('Add', [v, g.scalar(eps)])])], {}, `${s}/div`);
		return g.op('Add', [g.op('Mul', [y, gamma]), beta!], {}, `${s}/shift`);
	};
	// Opset 23's own RMSNormalization; LayerNormalization has been standard since opset 17.
	const standardNorm = (x: string, s: string, gamma: string, beta?: string) =>
		rms
			? g.op('RMSNormalization', [x, gamma], { axis: -1, epsilon: { float: eps } }, `${s}/rms`)
			: g.op('LayerNormalization', [x, gamma, beta!], { axis: -1, epsilon: { float: eps } }, `${s}/ln`);
	const normWeights = (s: string) => ({ gamma: ones(`${s}.weight`), beta: rms ? undefined : zeros(`${s}.bias`) });
	/** A norm of x that is not preceded by a residual add (the first one, and Gemma's branch norms). */
	const norm = (x: string, s: string, fusedOp = fused) => {
		const { gamma, beta } = normWeights(s);
		if (std) return standardNorm(x, s, gamma, beta);
		if (!fusedOp) return plainNorm(x, s, gamma, beta);
		const out = g.fresh(`${s}/out`);
		g.node(rms ? 'SimplifiedLayerNormalization' : 'LayerNormalization', rms ? [x, gamma] : [x, gamma, beta!], [out], {
			axis: -1,
			epsilon: { float: eps }
		});
		return out;
	};
	/** x + branch, then the next norm: one fused op, or an Add and a plain norm. `sum: false` leaves output 3 unnamed. */
	const addThenNorm = (x: string, branch: string, s: string, sum = true): { resid: string; normed: string } => {
		const { gamma, beta } = normWeights(s);
		if (!fused) {
			const resid = g.op('Add', [x, branch], {}, `${s}/resid`);
			return { resid, normed: std ? standardNorm(resid, s, gamma, beta) : plainNorm(resid, s, gamma, beta) };
		}
		const normed = g.fresh(`${s}/out`);
		const resid = sum ? g.fresh(`${s}/resid`) : '';
		g.node(
			rms ? 'SkipSimplifiedLayerNormalization' : 'SkipLayerNormalization',
			rms ? [x, branch, gamma] : [x, branch, gamma, beta!],
			sum ? [normed, '', '', resid] : [normed],
			{ epsilon: { float: eps } },
			'com.microsoft'
		);
		return { resid, normed };
	};

	// torch's input_ids.view(-1, S) and friends: shape-only ops between the ids and the Gather.
	const tokenIds = std
		? g.op(
				'Flatten',
				[
					g.op('Reshape', [
						g.op('Squeeze', [g.op('Unsqueeze', [g.op('Cast', [ids], { to: 6 }), g.constant([0])]), g.constant([0])]),
						g.constant([0, -1])
					])
				],
				{ axis: 1 }
			)
		: ids;
	let x = g.op('Gather', [w('embed_tokens.weight', [V, d], 1), tokenIds], { axis: 0 }, '/embed');
	if (o.arch === 'gpt2')
		x = g.op('Add', [x, g.op('Gather', [w('embed_positions.weight', [256, d], 0.5), positions], { axis: 0 })], {}, '/embed_sum');
	if (o.arch === 'gemma') x = g.op('Mul', [x, g.scalar(Math.sqrt(d))], {}, '/embed_scaled');

	// RotaryEmbedding's caches: [max position, Dh/2], rotate-half layout (interleaved = 0).
	const maxPos = 256;
	const ropeTable = (f: (a: number) => number) =>
		Float32Array.from({ length: maxPos * (Dh / 2) }, (_, i) => f(Math.floor(i / (Dh / 2)) * Math.pow(10000, -(2 * (i % (Dh / 2))) / Dh)));
	const ropeCos = std && o.arch !== 'gpt2' ? g.weight('rope.cos', ropeTable(Math.cos), [maxPos, Dh / 2]) : '';
	const ropeSin = std && o.arch !== 'gpt2' ? g.weight('rope.sin', ropeTable(Math.sin), [maxPos, Dh / 2]) : '';
	const attention = (xn: string, l: number) => {
		const s = `/layers.${l}/attn`;
		const heads = (t: string) => g.op('Transpose', [g.op('Reshape', [t, g.constant([0, 0, H, Dh])])], { perm: [0, 2, 1, 3] });
		const proj = (t: string, name: string) => {
			const y = g.op('MatMul', [t, w(`${s}/${name}.weight`, [d, d])], {}, `${s}/${name}`);
			return o.arch === 'gpt2' ? g.op('Add', [y, zeros(`${s}/${name}.bias`)]) : y;
		};
		const pastK = g.input(`past_key_values.${l}.key`, 'float32', ['batch', H, 'past_seq', Dh]);
		const pastV = g.input(`past_key_values.${l}.value`, 'float32', ['batch', H, 'past_seq', Dh]);
		if (std) {
			// One opset-23 Attention node on [B, S, H·Dh] q, k, v; RoPE by RotaryEmbedding where the model has it.
			const rope = (t: string) =>
				o.arch === 'gpt2' ? t : g.op('RotaryEmbedding', [t, ropeCos, ropeSin, positions], { num_heads: H }, `${s}/rope`);
			const [y, presentK, presentV] = g.opN(
				'Attention',
				[rope(proj(xn, 'q')), rope(proj(xn, 'k')), proj(xn, 'v'), bias, pastK, pastV],
				3,
				{ q_num_heads: H, kv_num_heads: H, scale: { float: 1 / Math.sqrt(Dh) } },
				`${s}/attention`
			);
			g.alias(presentK, `present.${l}.key`);
			g.alias(presentV, `present.${l}.value`);
			g.output(`present.${l}.key`, 'float32', ['batch', H, 'total_seq', Dh]);
			g.output(`present.${l}.value`, 'float32', ['batch', H, 'total_seq', Dh]);
			return proj(y, 'o');
		}
		const k = g.op('Concat', [pastK, heads(proj(xn, 'k'))], { axis: 2 });
		const v = g.op('Concat', [pastV, heads(proj(xn, 'v'))], { axis: 2 });
		g.alias(k, `present.${l}.key`);
		g.alias(v, `present.${l}.value`);
		g.output(`present.${l}.key`, 'float32', ['batch', H, 'total_seq', Dh]);
		g.output(`present.${l}.value`, 'float32', ['batch', H, 'total_seq', Dh]);
		const scores = g.op('Add', [
			g.op('Mul', [g.op('MatMul', [heads(proj(xn, 'q')), g.op('Transpose', [k], { perm: [0, 1, 3, 2] })]), g.scalar(1 / Math.sqrt(Dh))]),
			bias
		]);
		const ctx = g.op('MatMul', [g.op('Softmax', [scores], { axis: -1 }), v]);
		return proj(g.op('Reshape', [g.op('Transpose', [ctx], { perm: [0, 2, 1, 3] }), g.constant([0, 0, d])]), 'o');
	};
	const mlp = (xn: string, l: number) => {
		const s = `/layers.${l}/mlp`;
		const hidden = 2 * d;
		if (o.arch === 'gpt2') {
			const h = g.op('Add', [
				g.op('MatMul', [xn, w(`${s}/fc.weight`, [d, hidden])]),
				g.weight(`${s}/fc.bias`, new Float32Array(hidden), [hidden])
			]);
			const gelu = g.op('Mul', [
				g.op('Mul', [h, g.scalar(0.5)]),
				g.op('Add', [g.op('Erf', [g.op('Mul', [h, g.scalar(Math.SQRT1_2)])]), g.scalar(1)])
			]);
			return g.op('Add', [g.op('MatMul', [gelu, w(`${s}/proj.weight`, [hidden, d])]), zeros(`${s}/proj.bias`)]);
		}
		const gate = g.op('MatMul', [xn, w(`${s}/gate.weight`, [d, hidden])]);
		const up = g.op('MatMul', [xn, w(`${s}/up.weight`, [d, hidden])]);
		const act =
			o.arch === 'gemma'
				? g.op('Mul', [gate, g.op('Sigmoid', [g.op('Mul', [gate, g.scalar(1.702)])])])
				: g.op('Mul', [gate, g.op('Sigmoid', [gate])]);
		return g.op('MatMul', [g.op('Mul', [act, up]), w(`${s}/down.weight`, [hidden, d])]);
	};
	// Gemma normalises each branch's output before adding it back (never fused with the add).
	const branchOut = (t: string, s: string) => (o.arch === 'gemma' ? norm(t, s, false) : t);

	let normed = norm(x, '/layers.0/input_layernorm');
	for (let l = 0; l < L; l++) {
		const afterAttn = addThenNorm(
			x,
			branchOut(attention(normed, l), `/layers.${l}/post_attn_norm`),
			`/layers.${l}/post_attention_layernorm`
		);
		x = afterAttn.resid;
		const last = l === L - 1;
		const afterMlp = addThenNorm(
			x,
			branchOut(mlp(afterAttn.normed, l), `/layers.${l}/post_mlp_norm`),
			last ? '/final_norm' : `/layers.${l + 1}/input_layernorm`,
			!last
		);
		x = afterMlp.resid;
		normed = afterMlp.normed;
	}
	if (o.lmHead === false) {
		g.alias(normed, 'last_hidden_state');
		g.output('last_hidden_state', 'float32', ['batch', 'seq', d]);
	} else {
		g.alias(g.op('MatMul', [normed, w('lm_head.weight', [d, V])], {}, '/lm_head'), 'logits');
		g.output('logits', 'float32', ['batch', 'seq', V]);
	}
	return g.toBytes(std ? 23 : 17);
}

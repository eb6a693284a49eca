/**
 * Tiny decoders (random weights) whose attention is one fused op with its own KV-cache slots, written
 * with Loupe's graph builder for the KV-pairing and cache checks (tests/unit/verify-uncached.test.ts):
 *
 *   onnx-attention  the standard ONNX Attention (opset 23): past_key/past_value at inputs 4/5,
 *                   present_key/present_value at outputs 1/2
 *   gqa             com.microsoft GroupQueryAttention (2 query heads per KV head): past at 3/4,
 *                   seqlens_k and total_sequence_length computed from attention_mask, as the
 *                   onnxruntime-genai model builder writes them
 *   static          a fixed-size cache (`key_cache.N` [B,H,C,D]) updated in place by opset-24
 *                   TensorScatter at `write_indices`, read by Attention-24 with `nonpad_kv_seqlen`,
 *                   as recent static-cache exporters write it
 *
 * Each layer: RMSNorm in plain ops, attention, residual add, RMSNorm, SiLU MLP, residual add; a
 * final norm and an LM head. Not a test file itself (no `.test.ts`).
 */
import { GraphBuilder } from '../../src/lib/engine/model/onnx/graph-builder';
import { seededRandom } from '../../src/lib/engine/sample/prng';

export type OpDecoderKind = 'onnx-attention' | 'gqa' | 'static';

export function buildOpDecoder(
	kind: OpDecoderKind,
	o: { layers?: number; dModel?: number; heads?: number; vocab?: number; capacity?: number; seed?: number } = {}
): Uint8Array {
	const L = o.layers ?? 2;
	const d = o.dModel ?? 16;
	const H = o.heads ?? 2;
	const Dh = d / H;
	const kvH = kind === 'gqa' ? H / 2 : H;
	const V = o.vocab ?? 48;
	const C = o.capacity ?? 16;
	const opset = kind === 'static' ? 24 : kind === 'onnx-attention' ? 23 : 17;
	const random = seededRandom(o.seed ?? 5);
	const g = new GraphBuilder(`tiny-${kind}`);
	const w = (name: string, dims: number[], scale = 1 / Math.sqrt(dims[0])) =>
		g.weight(
			name,
			Float32Array.from({ length: dims.reduce((a, b) => a * b, 1) }, () => (random() * 2 - 1) * scale),
			dims
		);

	const ids = g.input('input_ids', 'int64', ['batch', 'seq']);
	const mask = kind === 'static' ? undefined : g.input('attention_mask', 'int64', ['batch', 'total_seq']);
	const positions = g.input('position_ids', 'int64', ['batch', 'seq']);
	const writeIndices = kind === 'static' ? g.input('write_indices', 'int64', ['batch']) : undefined;
	const nonpad = kind === 'static' ? g.input('nonpad_kv_seqlen', 'int64', ['batch']) : undefined;

	// Additive causal bias [B,1,S,T] (T = the cache's capacity for a static cache) from the positions.
	const total = mask ? g.op('Gather', [g.op('Shape', [mask]), g.scalar(1, 'int64')], { axis: 0 }) : g.scalar(C, 'int64');
	const keyPos = g.op('Range', [g.scalar(0, 'int64'), total, g.scalar(1, 'int64')]);
	let allowed = g.op('Cast', [g.op('LessOrEqual', [keyPos, g.op('Unsqueeze', [positions, g.constant([2])])])], { to: 1 });
	if (mask) allowed = g.op('Mul', [allowed, g.op('Unsqueeze', [g.op('Cast', [mask], { to: 1 }), g.constant([1])])]);
	const bias = g.op('Unsqueeze', [g.op('Mul', [g.op('Sub', [allowed, g.scalar(1)]), g.scalar(1e9)]), g.constant([1])]);
	// GroupQueryAttention's own mask inputs, as the model builder computes them.
	const seqlensK = mask
		? g.op('Cast', [g.op('Sub', [g.op('ReduceSum', [mask, g.constant([1])], { keepdims: 0 }), g.scalar(1, 'int64')])], { to: 6 })
		: '';
	const totalLen = mask ? g.op('Cast', [total], { to: 6 }) : '';

	const norm = (x: string, s: string) => {
		const ms =
			opset >= 18
				? g.op('ReduceMean', [g.op('Pow', [x, g.scalar(2)]), g.constant([-1])], { keepdims: 1 })
				: g.op('ReduceMean', [g.op('Pow', [x, g.scalar(2)])], { axes: [-1], keepdims: 1 });
		const y = g.op('Div', [x, g.op('Sqrt', [g.op('Add', [ms, g.scalar(1e-5)])])]);
		return g.op(
			'Mul',
			[
				y,
				g.weight(
					`${s}.weight`,
					Float32Array.from({ length: d }, () => 1 + (random() - 0.5) * 0.2),
					[d]
				)
			],
			{},
			`${s}/scale`
		);
	};
	const heads = (t: string, n: number) => g.op('Transpose', [g.op('Reshape', [t, g.constant([0, 0, n, Dh])])], { perm: [0, 2, 1, 3] });
	const merge = (t: string) => g.op('Reshape', [g.op('Transpose', [t], { perm: [0, 2, 1, 3] }), g.constant([0, 0, d])]);

	const attention = (xn: string, l: number) => {
		const s = `/layers.${l}/attn`;
		const q = g.op('MatMul', [xn, w(`${s}/q.weight`, [d, H * Dh])]);
		const k = g.op('MatMul', [xn, w(`${s}/k.weight`, [d, kvH * Dh])]);
		const v = g.op('MatMul', [xn, w(`${s}/v.weight`, [d, kvH * Dh])]);
		let y: string;
		if (kind === 'gqa') {
			const pastK = g.input(`past_key_values.${l}.key`, 'float32', ['batch', kvH, 'past_seq', Dh]);
			const pastV = g.input(`past_key_values.${l}.value`, 'float32', ['batch', kvH, 'past_seq', Dh]);
			y = g.fresh(`${s}/gqa`);
			g.node(
				'GroupQueryAttention',
				[q, k, v, pastK, pastV, seqlensK, totalLen],
				[y, `present.${l}.key`, `present.${l}.value`],
				{ num_heads: H, kv_num_heads: kvH },
				'com.microsoft'
			);
		} else if (kind === 'onnx-attention') {
			const pastK = g.input(`past_key_values.${l}.key`, 'float32', ['batch', kvH, 'past_seq', Dh]);
			const pastV = g.input(`past_key_values.${l}.value`, 'float32', ['batch', kvH, 'past_seq', Dh]);
			const y4 = g.fresh(`${s}/attention`);
			g.node('Attention', [heads(q, H), heads(k, kvH), heads(v, kvH), bias, pastK, pastV], [y4, `present.${l}.key`, `present.${l}.value`]);
			y = merge(y4);
		} else {
			const cacheK = g.input(`key_cache.${l}`, 'float32', ['batch', kvH, C, Dh]);
			const cacheV = g.input(`value_cache.${l}`, 'float32', ['batch', kvH, C, Dh]);
			const newK = g.op('TensorScatter', [cacheK, heads(k, kvH), writeIndices!], { axis: 2 });
			const newV = g.op('TensorScatter', [cacheV, heads(v, kvH), writeIndices!], { axis: 2 });
			g.alias(newK, `updated_key_cache.${l}`);
			g.alias(newV, `updated_value_cache.${l}`);
			const y4 = g.fresh(`${s}/attention`);
			g.node('Attention', [heads(q, H), newK, newV, bias, '', '', nonpad!], [y4]);
			y = merge(y4);
		}
		return g.op('MatMul', [y, w(`${s}/o.weight`, [H * Dh, d])]);
	};
	for (let l = 0; l < L; l++) {
		const cache = kind === 'static' ? ['updated_key_cache', 'updated_value_cache'] : ['present', 'present'];
		const len = kind === 'static' ? C : 'total_seq';
		g.output(kind === 'static' ? `${cache[0]}.${l}` : `present.${l}.key`, 'float32', ['batch', kvH, len, Dh]);
		g.output(kind === 'static' ? `${cache[1]}.${l}` : `present.${l}.value`, 'float32', ['batch', kvH, len, Dh]);
	}

	let x = g.op('Gather', [w('embed_tokens.weight', [V, d], 1), ids], { axis: 0 }, '/embed');
	for (let l = 0; l < L; l++) {
		x = g.op('Add', [x, attention(norm(x, `/layers.${l}/input_norm`), l)], {}, `/layers.${l}/resid_attn`);
		const xn = norm(x, `/layers.${l}/post_attn_norm`);
		const h = g.op('MatMul', [xn, w(`/layers.${l}/mlp/up.weight`, [d, 2 * d])]);
		const act = g.op('Mul', [h, g.op('Sigmoid', [h])]);
		x = g.op('Add', [x, g.op('MatMul', [act, w(`/layers.${l}/mlp/down.weight`, [2 * d, d])])], {}, `/layers.${l}/resid_mlp`);
	}
	g.alias(g.op('MatMul', [norm(x, '/final_norm'), w('lm_head.weight', [d, V])], {}, '/lm_head'), 'logits');
	g.output('logits', 'float32', ['batch', 'seq', V]);
	return g.toBytes(opset);
}

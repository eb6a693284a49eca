/**
 * Decoders at the size of the models people open, with random weights, written with Loupe's own
 * ONNX builder in the style torch.onnx.export writes (plain-op norms, residual adds as `Add`,
 * attention written out, the past joined by Concat): for measuring memory, load time and speed at
 * real size (tests/bench/real-size.ts), and for running `--verify` on a 124M export.
 *
 *   gpt2    GPT-2 small: d_model 768, 12 layers, 12 heads, vocab 50257, n_positions 1024, learned
 *           position embedding, LayerNorm, GELU MLP 4×, biases; the tied LM head stored twice, as
 *           torch exports it (the embedding [V, d] for the Gather and a transposed copy [d, V] as the
 *           MatMul's own initializer): 124.4M distinct parameters, 163M stored, ~650 MB
 *   gemma3  Gemma 3 270M: d_model 640, 18 layers, 4 query heads, 1 KV head, head_dim 256,
 *           intermediate 2048, vocab 262144, embedding × √d, RMSNorm with sandwich norms and q/k
 *           norms, GeGLU; the LM head tied to the embedding through a Transpose (stored once):
 *           268.1M parameters, 1.07 GB
 *
 * `layers` and `vocab` shrink a model for unit tests while keeping its style. Positions matter only
 * through the causal mask (no RoPE: surgery does not look inside attention, and memory does not
 * depend on it).
 */
import { GraphBuilder } from './graph-builder';
import { seededRandom } from '../../sample/prng';

export type RealSizeArch = 'gpt2' | 'gemma3';

export interface RealSizeOptions {
	arch: RealSizeArch;
	/** Defaults: the real model's. */
	layers?: number;
	vocab?: number;
	seed?: number;
}

export interface RealSizeShape {
	dModel: number;
	layers: number;
	heads: number;
	kvHeads: number;
	headDim: number;
	hidden: number;
	vocab: number;
	positions: number;
}

export function realSizeShape(o: RealSizeOptions): RealSizeShape {
	const base: RealSizeShape =
		o.arch === 'gpt2'
			? { dModel: 768, layers: 12, heads: 12, kvHeads: 12, headDim: 64, hidden: 3072, vocab: 50257, positions: 1024 }
			: { dModel: 640, layers: 18, heads: 4, kvHeads: 1, headDim: 256, hidden: 2048, vocab: 262144, positions: 32768 };
	return { ...base, layers: o.layers ?? base.layers, vocab: o.vocab ?? base.vocab };
}

/** Distinct parameters of the model these options build (the tied head once), from the shapes alone. */
export function realSizeParameters(o: RealSizeOptions): number {
	const s = realSizeShape(o);
	const d = s.dModel;
	const q = s.heads * s.headDim;
	const kv = s.kvHeads * s.headDim;
	if (o.arch === 'gpt2') {
		const layer = 2 * 2 * d + d * (q + 2 * kv) + (q + 2 * kv) + q * d + d + d * s.hidden + s.hidden + s.hidden * d + d;
		return s.vocab * d + s.positions * d + s.layers * layer + 2 * d;
	}
	const layer = 4 * d + 2 * s.headDim + d * (q + 2 * kv) + q * d + 3 * d * s.hidden;
	return s.vocab * d + s.layers * layer + d;
}

/** Builds the graph; the caller serialises it (`toBytes()` for weights inside, `toExternal()` beside). */
export function buildRealSizeDecoder(o: RealSizeOptions): { builder: GraphBuilder; opset: number; shape: RealSizeShape } {
	const s = realSizeShape(o);
	const { dModel: d, heads: H, kvHeads: KV, headDim: Dh, vocab: V } = s;
	const gemma = o.arch === 'gemma3';
	const random = seededRandom(o.seed ?? 11);
	const g = new GraphBuilder(`${o.arch}-real-size`);
	// Uniform in ±scale: cheap to draw 268M of, and with the norms it keeps activations in range.
	const w = (name: string, dims: number[], scale = 1 / Math.sqrt(dims[0])) => {
		const a = new Float32Array(dims.reduce((x, y) => x * y, 1));
		for (let i = 0; i < a.length; i++) a[i] = (random() * 2 - 1) * scale;
		return g.weight(name, a, dims);
	};
	const near = (name: string, n: number, centre: number, spread: number) =>
		g.weight(
			name,
			Float32Array.from({ length: n }, () => centre + (random() - 0.5) * spread),
			[n]
		);
	const eps = 1e-6;

	const ids = g.input('input_ids', 'int64', ['batch_size', 'sequence_length']);
	const mask = g.input('attention_mask', 'int64', ['batch_size', 'total_sequence_length']);
	const positions = g.input('position_ids', 'int64', ['batch_size', 'sequence_length']);

	// Causal mask bias [B, 1, S, T] from position_ids and attention_mask.
	const total = g.op('Gather', [g.op('Shape', [mask]), g.scalar(1, 'int64')], { axis: 0 });
	const keyPos = g.op('Range', [g.scalar(0, 'int64'), total, g.scalar(1, 'int64')]);
	const causal = g.op('Cast', [g.op('LessOrEqual', [keyPos, g.op('Unsqueeze', [positions, g.constant([2])])])], { to: 1 });
	const padding = g.op('Unsqueeze', [g.op('Cast', [mask], { to: 1 }), g.constant([1])]);
	const bias = g.op('Unsqueeze', [
		g.op('Mul', [g.op('Sub', [g.op('Mul', [causal, padding]), g.scalar(1)]), g.scalar(3.4e38)]),
		g.constant([1])
	]);

	const layerNorm = (x: string, scope: string) => {
		const mean = g.op('ReduceMean', [x], { axes: [-1], keepdims: 1 }, `${scope}/ReduceMean`);
		const c = g.op('Sub', [x, mean], {}, `${scope}/Sub`);
		const v = g.op('ReduceMean', [g.op('Pow', [c, g.scalar(2)])], { axes: [-1], keepdims: 1 }, `${scope}/ReduceMean_1`);
		const y = g.op('Div', [c, g.op('Sqrt', [g.op('Add', [v, g.scalar(1e-5)])])], {}, `${scope}/Div`);
		return g.op('Add', [g.op('Mul', [y, near(`${scope}.weight`, d, 1, 0.2)]), near(`${scope}.bias`, d, 0, 0.1)], {}, `${scope}/Add_1`);
	};
	// Gemma's RMSNorm with the 1 + weight folded into the stored scale, as the torch export has it.
	const rmsNorm = (x: string, scope: string, n = d) => {
		const ms = g.op('ReduceMean', [g.op('Pow', [x, g.scalar(2)])], { axes: [-1], keepdims: 1 }, `${scope}/ReduceMean`);
		const y = g.op('Div', [x, g.op('Sqrt', [g.op('Add', [ms, g.scalar(eps)])])], {}, `${scope}/Div`);
		return g.op('Mul', [y, near(`${scope}.weight`, n, 1, 0.2)], {}, `${scope}/Mul_1`);
	};
	const norm = gemma ? rmsNorm : layerNorm;
	const linear = (x: string, name: string, inDim: number, outDim: number) => {
		const y = g.op('MatMul', [x, w(`${name}.weight`, [inDim, outDim])], {}, `/${name}/MatMul`);
		return gemma ? y : g.op('Add', [y, near(`${name}.bias`, outDim, 0, 0.02)], {}, `/${name}/Add`);
	};
	const toHeads = (t: string, n: number) => g.op('Transpose', [g.op('Reshape', [t, g.constant([0, 0, n, Dh])])], { perm: [0, 2, 1, 3] });

	const attention = (xn: string, l: number) => {
		const p = gemma ? `model.layers.${l}.self_attn` : `transformer.h.${l}.attn`;
		const pastK = g.input(`past_key_values.${l}.key`, 'float32', ['batch_size', KV, 'past_sequence_length', Dh]);
		const pastV = g.input(`past_key_values.${l}.value`, 'float32', ['batch_size', KV, 'past_sequence_length', Dh]);
		let q = toHeads(linear(xn, `${p}.q_proj`, d, H * Dh), H);
		let k = toHeads(linear(xn, `${p}.k_proj`, d, KV * Dh), KV);
		if (gemma) {
			q = rmsNorm(q, `/${p}/q_norm`, Dh);
			k = rmsNorm(k, `/${p}/k_norm`, Dh);
		}
		const keys = g.op('Concat', [pastK, k], { axis: 2 }, `/${p}/Concat_k`);
		const values = g.op('Concat', [pastV, toHeads(linear(xn, `${p}.v_proj`, d, KV * Dh), KV)], { axis: 2 }, `/${p}/Concat_v`);
		g.alias(keys, `present.${l}.key`);
		g.alias(values, `present.${l}.value`);
		g.output(`present.${l}.key`, 'float32', ['batch_size', KV, 'total_sequence_length', Dh]);
		g.output(`present.${l}.value`, 'float32', ['batch_size', KV, 'total_sequence_length', Dh]);
		// GQA without repeat_kv: MatMul broadcasts the one KV head over the query heads ([B,H,S,Dh] × [B,1,Dh,T]).
		const scores = g.op('Add', [
			g.op('Mul', [g.op('MatMul', [q, g.op('Transpose', [keys], { perm: [0, 1, 3, 2] })]), g.scalar(1 / Math.sqrt(Dh))]),
			bias
		]);
		const ctx = g.op('MatMul', [g.op('Softmax', [scores], { axis: -1 }), values]);
		return linear(
			g.op('Reshape', [g.op('Transpose', [ctx], { perm: [0, 2, 1, 3] }), g.constant([0, 0, H * Dh])]),
			`${p}.o_proj`,
			H * Dh,
			d
		);
	};
	const mlp = (xn: string, l: number) => {
		if (!gemma) {
			const h = linear(xn, `transformer.h.${l}.mlp.c_fc`, d, s.hidden);
			const gelu = g.op('Mul', [
				g.op('Mul', [h, g.scalar(0.5)]),
				g.op('Add', [g.op('Erf', [g.op('Mul', [h, g.scalar(Math.SQRT1_2)])]), g.scalar(1)])
			]);
			return linear(gelu, `transformer.h.${l}.mlp.c_proj`, s.hidden, d);
		}
		const p = `model.layers.${l}.mlp`;
		const gate = linear(xn, `${p}.gate_proj`, d, s.hidden);
		const act = g.op('Mul', [gate, g.op('Sigmoid', [g.op('Mul', [gate, g.scalar(1.702)])])]);
		return linear(g.op('Mul', [act, linear(xn, `${p}.up_proj`, d, s.hidden)]), `${p}.down_proj`, s.hidden, d);
	};

	const embedding = w(gemma ? 'model.embed_tokens.weight' : 'transformer.wte.weight', [V, d], gemma ? 1 / Math.sqrt(d) : 0.1);
	let x = g.op('Gather', [embedding, ids], { axis: 0 }, '/embed_tokens/Gather');
	if (gemma) x = g.op('Mul', [x, g.scalar(Math.sqrt(d))], {}, '/model/Mul');
	else
		x = g.op(
			'Add',
			[x, g.op('Gather', [w('transformer.wpe.weight', [s.positions, d], 0.05), positions], { axis: 0 })],
			{},
			'/transformer/Add'
		);

	for (let l = 0; l < s.layers; l++) {
		const p = gemma ? `/model/layers.${l}` : `/transformer/h.${l}`;
		let a = attention(norm(x, gemma ? `${p}/input_layernorm` : `${p}/ln_1`), l);
		if (gemma) a = rmsNorm(a, `${p}/post_attention_layernorm`);
		x = g.op('Add', [x, a], {}, `${p}/Add`);
		let m = mlp(norm(x, gemma ? `${p}/pre_feedforward_layernorm` : `${p}/ln_2`), l);
		if (gemma) m = rmsNorm(m, `${p}/post_feedforward_layernorm`);
		x = g.op('Add', [x, m], {}, `${p}/Add_1`);
	}
	const normed = norm(x, gemma ? '/model/norm' : '/transformer/ln_f');
	let head: string;
	if (gemma) head = g.op('Transpose', [embedding], { perm: [1, 0] }, '/lm_head/Transpose');
	else {
		// The tied head's transposed copy, its own initializer (what torch.onnx's constant folding leaves).
		const e = g.initializerData(embedding)!;
		const t = new Float32Array(V * d);
		for (let v = 0; v < V; v++) for (let i = 0; i < d; i++) t[i * V + v] = e[v * d + i];
		head = g.weight('onnx::MatMul_lm_head', t, [d, V]);
	}
	g.alias(g.op('MatMul', [normed, head], {}, '/lm_head/MatMul'), 'logits');
	g.output('logits', 'float32', ['batch_size', 'sequence_length', V]);
	return { builder: g, opset: 17, shape: s };
}

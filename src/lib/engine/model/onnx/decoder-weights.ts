/**
 * An exported decoder's weights for the attribution (attribution/exported-shape.ts: `LlamaWeights`
 * plus how the forward differs), traced from the graph's structure, starting from what surgery
 * already found (trace-residual.ts, sublayer-hooks.ts): the residual boundaries, the hook tensors
 * attn_out, mlp_in and mlp_out, the embedding and the head. Names are never read. Per layer:
 *
 *   attn_out ← [post-attention RMSNorm] ← MatMul W_o ← reshapes ← MatMul(probs, v)
 *   probs    ← Softmax ← Add(mask) ← Mul/Div(scale) ← MatMul(q, kᵀ)
 *   q, k     ← RoPE: q·cos + rotate_half(q)·sin (Hugging Face), or q·cos + (q W-pairs-swapped)·sin (Loupe's build)
 *            ← [q/k RMSNorm per head] ← reshapes ← MatMul W_q / W_k ← the attention RMSNorm ← resid_pre
 *   v        ← reshapes, repeat_kv, the cache's Concat ← MatMul W_v ← the same norm
 *   mlp_out  ← [post-feedforward RMSNorm] ← MatMul W_down ← Mul(act(MatMul W_gate), MatMul W_up) ← mlp_in ← RMSNorm
 *
 * and each add is checked to be the residual add surgery named. Rotate-half RoPE is turned into
 * llama2.c's interleaved pairs by permuting the rows of W_q and W_k (and of the q/k norm weights)
 * within each head: (j, j + hs/2) → (2j, 2j + 1); q·k is unchanged, so the patterns are the model's.
 * The frequencies are the graph's own (its inv_freq, or its RoPE tables), the eps its Add constant,
 * the attention scale its Mul or Div, the window its mask's Greater(key, query − w).
 *
 * GPT-2's shape is read the same way: LayerNorm (Sub of the mean, ÷ √(var + eps), × γ, + β), Gemm
 * biases, the fused c_attn Split into q, k and v, no RoPE, learned positions added to the embedding,
 * a plain MLP (act(x W_1 + b_1) W_2 + b_2), scores divided by √head_dim computed from the shape.
 *
 * What is refused, with the reason: parallel blocks (GPT-NeoX), fused or quantized operators,
 * activations other than SiLU and tanh-GELU, and anything not found where the structure above puts it.
 */
import { LoupeError } from '../../errors';
import type { LlamaLayerWeights } from '../llama2c/checkpoint';
import type { DecoderWeights, ExportedLayer, ExportedShape } from '../../attribution/exported-shape';
import type { ExportedDecoder } from './hook-manifest';
import type { NodeProto } from './graph';
import { hookName } from '../hooks';
import type { ExternalFiles } from './initializer-bytes';
import { unembeddingWeight } from './unembedding';
import { CASTS, GraphReader, Refusal, SHAPE_OPS, transposed, type Linear } from './decoder-weights-read';

const WHAT_TO_OPEN =
	'Open stories260K (the default model), or a Llama-, Gemma-3- or GPT-2-shaped export in fp32 or fp16, to build a graph.';

export interface TraceWeightsOptions {
	/** The longest prompt the model reads (the source's shape); the graph's own RoPE tables cap it further. */
	maxSeqLen?: number;
	name?: string;
}

/** The weights, or a LoupeError saying what was not found and what to open instead. */
export function traceDecoderWeights(d: ExportedDecoder, files: ExternalFiles, o: TraceWeightsOptions = {}): DecoderWeights {
	const name = o.name ?? 'This export';
	try {
		return trace(d, new GraphReader(d.graph, files), o);
	} catch (e) {
		if (!(e instanceof Refusal)) throw e;
		throw new LoupeError('unsupported-checkpoint', `Loupe cannot build attribution graphs on ${name}: ${e.message}.`, WHAT_TO_OPEN);
	}
}

interface Rope {
	/** The tensor RoPE turns (a projection's output, or a q/k norm's). */
	input: string;
	invFreq: Float64Array;
	/** Hugging Face's rotate_half: rows need permuting into llama2.c's interleaved pairs. */
	halves: boolean;
	/** Rows of the RoPE tables, where the graph stores them (Loupe's build): the longest prompt. */
	tableRows?: number;
}

function trace(d: ExportedDecoder, r: GraphReader, o: TraceWeightsOptions): DecoderWeights {
	const { trace: t, io } = d;
	const g = d.graph;
	refuseFusedOrQuantized(g);
	if (t.architecture === 'gpt-neox' || t.addsPerLayer.some((n) => n !== 2))
		throw new Refusal(
			'its layers are not one attention add then one MLP add (GPT-NeoX-style parallel attention and MLP), and the attribution models sequential blocks so far'
		);
	const D = t.dModel;
	const V = t.vocabSize;
	const L = t.nLayers;
	// The cache's dims end [kv_heads, past, head_dim]: [B, KV, P, hd] per key and value, or [2, B, KV, P, hd] stacked.
	const dims = io.kv[0]?.dims ?? [];
	const hs = dims.length >= 4 && typeof dims[dims.length - 1] === 'number' ? (dims[dims.length - 1] as number) : NaN;
	const nKv = dims.length >= 4 && typeof dims[dims.length - 3] === 'number' ? (dims[dims.length - 3] as number) : NaN;
	if (!Number.isInteger(hs) || !Number.isInteger(nKv) || !(io.kv.length === 2 * L || io.kv.length === L))
		throw new Refusal('its KV cache does not give [kv_heads, past, head_dim] with fixed heads and head size for every layer');

	const embedding = r.floats(t.embedding, 'the token embedding').data;
	const stream0 = t.boundaries[0].tensor;
	let embedScale = 1;
	let positions: Float32Array | undefined;
	const first = r.node(stream0);
	const isEmbedding = (x: string) => {
		const n = r.node(x);
		return n?.opType === 'Gather' && n.input![0] === t.embedding;
	};
	if (first?.opType === 'Mul') {
		const c = first.input!.map((x) => r.scalar(x)).find((v) => v !== null);
		if (c == null || !first.input!.some(isEmbedding)) throw new Refusal("the embedding's Mul is not of the embedding by a constant");
		embedScale = c;
	} else if (first?.opType === 'Add') {
		// Learned positions (GPT-2): the token embedding plus a Gather of a stored table by position.
		const k = first.input!.findIndex(isEmbedding);
		const pos = k >= 0 ? r.node(first.input![1 - k]) : undefined;
		if (pos?.opType !== 'Gather' || !r.g.initializers.has(pos.input![0]) || r.isConst(pos.input![1]))
			throw new Refusal('the embedding is added to something that is not a position-embedding table');
		const table = r.floats(pos.input![0], 'the position embedding');
		if (table.dims.length !== 2 || table.dims[1] !== D) throw new Refusal('the position embedding is not [positions, d_model]');
		positions = table.data;
	} else if (!isEmbedding(stream0))
		throw new Refusal(`the residual stream starts at a ${first?.opType ?? 'graph input'}, not the embedding Gather`);
	const fromStream = g.descendants(stream0);

	let eps: number | undefined;
	let layerNorm: boolean | undefined;
	const norm = (y: string, what: string) => {
		const n = r.norm(y, what);
		if (eps === undefined) eps = n.eps;
		else if (n.eps !== eps) throw new Refusal(`its norms use two epsilons (${eps} and ${n.eps}); Loupe's forward takes one`);
		if (layerNorm === undefined) layerNorm = n.layerNorm;
		else if (n.layerNorm !== layerNorm) throw new Refusal('it mixes LayerNorm and RMSNorm');
		return n;
	};
	const site = (l: number, kind: 'attn_out' | 'mlp_in' | 'mlp_out') => {
		const s = t.sites[hookName(l, kind)];
		if (!s || s.split) throw new Refusal(`surgery found no plain tensor for ${hookName(l, kind)}`);
		return s.tensor;
	};
	/** Whether `sum` is an Add of `a` and `b` (through casts), in either order. */
	const addOf = (sum: string, a: string, b: string) => {
		const n = r.node(sum);
		if (n?.opType !== 'Add') return false;
		const ops = n.input!.map((x) => r.back(x, CASTS));
		const [x, y] = [r.back(a, CASTS), r.back(b, CASTS)];
		return (ops[0] === x && ops[1] === y) || (ops[0] === y && ops[1] === x);
	};

	const layers: LlamaLayerWeights[] = [];
	const shapes: ExportedLayer[] = [];
	let attnScale: number | undefined;
	let mlpActivation: ExportedShape['mlpActivation'] | undefined;
	let mlpGated: boolean | undefined;
	let nHeads = 0;
	let maxRows = Infinity;
	for (let l = 0; l < L; l++) {
		const at = (what: string) => `layer ${l}'s ${what}`;
		// Attention, from its output back.
		const attnOut = site(l, 'attn_out');
		let oProj = r.linear(attnOut, at('W_o'));
		let postAttnNorm: Float32Array | undefined;
		if (!oProj) {
			const n = norm(attnOut, at('attention output (hook_attn_out)'));
			if (n.bias) throw new Refusal(`${at('post-attention norm')} has a bias`);
			postAttnNorm = n.weight;
			oProj = r.linear(n.input, at('W_o'));
			if (!oProj) throw new Refusal(`${at('post-attention norm')} does not read an output projection`);
		}
		const pv = r.node(r.back(oProj.x, SHAPE_OPS));
		if (pv?.opType !== 'MatMul' || pv.input!.some((x) => r.isConst(x)))
			throw new Refusal(`${at('output projection')} does not read attention's probabilities × values`);
		const softmax = r.node(r.back(pv.input![0], SHAPE_OPS));
		if (softmax?.opType !== 'Softmax') throw new Refusal(`${at('attention')} does not mix values by a Softmax`);
		const { scores, scale, mask } = scoresOf(r, softmax.input![0], hs, at('attention scores'));
		if (attnScale === undefined) attnScale = scale;
		else if (Math.abs(scale - attnScale) > 1e-7 * attnScale) throw new Refusal('its layers scale attention scores differently');
		const window = mask ? maskWindow(r, mask) : 0;

		const qRope = rope(r, r.back(scores.input![0], SHAPE_OPS), fromStream, hs, at('queries'));
		const kRope = rope(r, r.back(scores.input![1], SHAPE_OPS), fromStream, hs, at('keys'));
		if (
			qRope.halves !== kRope.halves ||
			qRope.invFreq.length !== kRope.invFreq.length ||
			qRope.invFreq.some((f, j) => Math.abs(f - kRope.invFreq[j]) > 1e-6 * f)
		)
			throw new Refusal(`${at('queries and keys')} are not turned by the same RoPE`);
		if (qRope.tableRows) maxRows = Math.min(maxRows, qRope.tableRows);
		const headNorm = (x: string, what: string) => {
			const p = r.linear(r.back(x, SHAPE_OPS), at(what));
			if (p) return { proj: p, weight: undefined };
			const n = norm(r.back(x, SHAPE_OPS), at(what));
			if (n.weight.length !== hs || n.bias) throw new Refusal(`${at(what)} is not an RMSNorm over one head's ${hs} values`);
			const proj = r.linear(r.back(n.input, SHAPE_OPS), at(what));
			if (!proj) throw new Refusal(`${at(what)} does not read a projection`);
			return { proj, weight: n.weight };
		};
		const q = headNorm(qRope.input, 'query norm');
		const k = headNorm(kRope.input, 'key norm');
		const vProj = r.linear(r.back(pv.input![1], SHAPE_OPS), at('W_v'));
		if (!vProj) throw new Refusal(`${at('values')} are not a projection of the residual stream`);
		const xAtt = r.back(q.proj.x, CASTS);
		if (r.back(k.proj.x, CASTS) !== xAtt || r.back(vProj.x, CASTS) !== xAtt)
			throw new Refusal(`${at('queries, keys and values')} do not read one normalised input`);
		const attnNorm = norm(xAtt, at('attention input norm'));
		if (r.back(attnNorm.input, CASTS) !== r.back(t.boundaries[l].tensor, CASTS))
			throw new Refusal(`${at('attention input norm')} does not read the residual stream`);

		const [wq, wk, wv, wo] = [q.proj, k.proj, vProj, oProj];
		const qDim = wq.dims[1];
		if (wq.dims[0] !== D || qDim % hs || wk.dims[1] !== nKv * hs || wv.dims[1] !== nKv * hs || wo.dims[0] !== qDim || wo.dims[1] !== D)
			throw new Refusal(
				`${at('projections')} have shapes W_q [${wq.dims}], W_k [${wk.dims}], W_v [${wv.dims}], W_o [${wo.dims}], not those of ${nKv} KV heads of ${hs}`
			);
		if (nHeads === 0) nHeads = qDim / hs;
		else if (nHeads !== qDim / hs) throw new Refusal('its layers have different numbers of heads');
		if (nHeads % nKv) throw new Refusal(`its ${nHeads} query heads do not share ${nKv} KV heads evenly`);
		const perm = qRope.halves ? halvesToPairs(hs) : null;
		const rows = (w: Float32Array, out: number, inp: number) => permuteRows(transposed(w, inp, out), out, inp, hs, perm);
		const bias = (b: Float32Array | undefined, n: number) => b && permuteRows(b, n, 1, hs, perm);

		// The MLP, from its output back, and the two residual adds.
		const mlpIn = site(l, 'mlp_in');
		const ffnNorm = norm(mlpIn, at('MLP input norm (hook_mlp_in)'));
		if (!addOf(ffnNorm.input, t.boundaries[l].tensor, attnOut))
			throw new Refusal(`${at('MLP input norm')} does not read resid_pre + attn_out (the attention's residual add)`);
		const mlpOut = site(l, 'mlp_out');
		let down = r.linear(mlpOut, at('W_down'));
		let postFfnNorm: Float32Array | undefined;
		if (!down) {
			const n = norm(mlpOut, at('MLP output (hook_mlp_out)'));
			if (n.bias) throw new Refusal(`${at('post-feedforward norm')} has a bias`);
			postFfnNorm = n.weight;
			down = r.linear(n.input, at('W_down'));
			if (!down) throw new Refusal(`${at('post-feedforward norm')} does not read a down projection`);
		}
		if (!addOf(t.boundaries[l + 1].tensor, ffnNorm.input, mlpOut))
			throw new Refusal(`${at('output')} is not the attention add's sum + mlp_out`);
		const mlp = mlpOf(r, down.x, mlpIn, at('MLP'));
		if (mlpActivation === undefined) ((mlpActivation = mlp.activation), (mlpGated = !!mlp.up));
		else if (mlpActivation !== mlp.activation || mlpGated !== !!mlp.up) throw new Refusal('its layers use different MLPs');
		const [w1, w2] = [mlp.gate, down];
		const F = w1.dims[1];
		if (w1.dims[0] !== D || (mlp.up && (mlp.up.dims[0] !== D || mlp.up.dims[1] !== F)) || w2.dims[0] !== F || w2.dims[1] !== D)
			throw new Refusal(`${at('MLP')} has shapes gate [${w1.dims}], up [${mlp.up?.dims ?? '–'}], down [${w2.dims}]`);

		layers.push({
			rmsAtt: attnNorm.weight,
			wq: rows(wq.w, qDim, D),
			wk: rows(wk.w, nKv * hs, D),
			wv: transposed(wv.w, D, nKv * hs),
			wo: transposed(wo.w, qDim, D),
			rmsFfn: ffnNorm.weight,
			w1: transposed(w1.w, D, F),
			w2: transposed(w2.w, F, D),
			w3: mlp.up ? transposed(mlp.up.w, D, F) : new Float32Array(0)
		});
		shapes.push({
			invFreq: qRope.invFreq,
			window,
			qNorm: q.weight && permuteRows(q.weight, hs, 1, hs, perm),
			kNorm: k.weight && permuteRows(k.weight, hs, 1, hs, perm),
			postAttnNorm,
			postFfnNorm,
			attnNormBias: attnNorm.bias,
			ffnNormBias: ffnNorm.bias,
			bq: bias(wq.b, qDim),
			bk: bias(wk.b, nKv * hs),
			bv: wv.b,
			bo: wo.b,
			b1: w1.b,
			b2: w2.b
		});
		if (mlp.up?.b) throw new Refusal(`${at('MLP')}'s up projection has a bias`);
	}
	const hidden = layers[0].w1.length / D;
	if (layers.some((x) => x.w1.length !== hidden * D)) throw new Refusal('its MLPs have different widths');

	// The final norm and the head.
	const head = unembeddingWeight(d);
	let writer = r.node(io.logits);
	while (writer && (writer.opType === 'Identity' || writer.opType === 'Reshape')) writer = r.node(writer.input![0]);
	if (!head || !writer || writer.input![2])
		throw new Refusal('its logits are not a product of the last hidden state with a stored head (and no bias)');
	const finalNorm = norm(r.back(writer.input![0], SHAPE_OPS), 'the final norm');
	if (r.back(finalNorm.input, CASTS) !== r.back(t.boundaries[L].tensor, CASTS))
		throw new Refusal('the final norm does not read the last residual boundary');
	// W_U as [V, D]: a Gemm with transB stores it so; a MatMul stores [D, V] (a tied head's transposed copy, or its own).
	// A [D, V] head that is the embedding's transposed copy (a tied head as torch exports it) is
	// recognised before anything is transposed: for a real vocabulary that is one copy of W_E fewer.
	const hw = r.floats(head.name, 'the LM head');
	const sameAs = (at: (v: number, i: number) => number) => {
		if (hw.data.length !== embedding.length) return false;
		for (let v = 0; v < V; v++) for (let i = 0; i < D; i++) if (!Object.is(at(v, i), embedding[v * D + i])) return false;
		return true;
	};
	const tied = head.transposed ? sameAs((v, i) => hw.data[v * D + i]) : sameAs((v, i) => hw.data[i * V + v]);
	const classifier = tied ? embedding : head.transposed ? hw.data : transposed(hw.data, D, V);

	const maxPositions = positions ? positions.length / D : Infinity;
	const seqLen = Math.min(o.maxSeqLen ?? 4096, maxRows, maxPositions);
	return {
		config: {
			dim: D,
			hiddenDim: hidden,
			nLayers: L,
			nHeads,
			nKvHeads: nKv,
			vocabSize: V,
			seqLen,
			sharedClassifier: tied,
			normEps: eps!,
			ropeTheta: ropeBase(shapes[0].invFreq, hs)
		},
		tokenEmbedding: embedding,
		layers,
		rmsFinal: finalNorm.weight,
		classifier,
		exported: {
			architecture: t.architecture,
			headSize: hs,
			attnScale: attnScale!,
			embedScale,
			mlpActivation: mlpActivation!,
			mlpGated: mlpGated!,
			layerNorm: layerNorm!,
			finalNormBias: finalNorm.bias,
			positions,
			layers: shapes
		}
	};
}

/** Fused operators hide the norms and projections the trace reads; quantized weights are not fp32/fp16 initializers. */
const FUSED = [
	'SkipSimplifiedLayerNormalization',
	'SkipLayerNormalization',
	'SimplifiedLayerNormalization',
	'RMSNormalization',
	'RotaryEmbedding',
	'GroupQueryAttention',
	'MultiHeadAttention',
	'Attention',
	'EmbedLayerNormalization',
	'FusedMatMul'
];
const QUANTIZED = [
	'MatMulNBits',
	'MatMulInteger',
	'DynamicQuantizeMatMul',
	'MatMulIntegerToFloat',
	'DequantizeLinear',
	'GatherBlockQuantized',
	'QAttention'
];

function refuseFusedOrQuantized(g: ExportedDecoder['graph']) {
	const quantized = g.nodes.find((n) => QUANTIZED.includes(n.opType!));
	if (quantized)
		throw new Refusal(
			`its weights are quantized (${quantized.opType} "${quantized.name}"), and the attribution reads fp32 or fp16 weights: pick the model's fp32 or fp16 variant`
		);
	const fused = g.nodes.find((n) => FUSED.includes(n.opType!));
	if (fused)
		throw new Refusal(
			`it uses fused operators (${fused.opType} "${fused.name}"), which hide the norms and projections the attribution reads: pick an export written in standard ops (torch.onnx.export / Optimum without fusion)`
		);
}

/** Back from the Softmax's input: the scores MatMul, the constant scale on the way, and the additive mask. */
function scoresOf(r: GraphReader, t: string, hs: number, what: string) {
	let scale = 1;
	let mask: string | undefined;
	for (;;) {
		const n = r.node(t);
		if (!n) throw new Refusal(`${what} come from a graph input`);
		const op = n.opType!;
		if (SHAPE_OPS.has(op) && op !== 'Concat') t = n.input![0];
		else if ((op === 'Mul' || op === 'Div') && n.input!.some((x) => r.scalar(x) !== null)) {
			const k = n.input!.findIndex((x) => r.scalar(x) !== null);
			const c = r.scalar(n.input![k])!;
			if (op === 'Div' && k !== 1) throw new Refusal(`${what} are a constant divided by the scores`);
			scale = op === 'Mul' ? scale * c : scale / c;
			t = n.input![1 - k];
		} else if (op === 'Div' && sqrtOfHeadSize(r, n.input![1])) {
			// GPT-2 divides by √head_dim computed from the value's shape (Shape, Slice, Cast, Pow 0.5).
			scale /= Math.sqrt(hs);
			t = n.input![0];
		} else if (op === 'Add' && !mask) {
			// The mask is the operand that is not the scores: the one with no MatMul of two computed tensors behind it.
			const k = n.input!.findIndex((x) => !reachesScores(r, x));
			if (k < 0 || !reachesScores(r, n.input![1 - k])) throw new Refusal(`${what} have an Add that is not scores + mask`);
			mask = n.input![k];
			t = n.input![1 - k];
		} else if (op === 'MatMul' && !n.input!.some((x) => r.isConst(x))) return { scores: n, scale, mask };
		else
			throw new Refusal(
				`${what} pass through ${op} "${n.name}", which Loupe does not model (only a scale and an additive mask may sit between q·kᵀ and the softmax)`
			);
	}
}

/** A divisor computed from a tensor's shape only, as a Pow by 0.5 (plus zeros): √ of a dim, the head size where scores are divided. */
function sqrtOfHeadSize(r: GraphReader, t: string): boolean {
	const allowed = new Set(['Slice', 'Gather', 'Squeeze', 'Unsqueeze', 'Cast', 'Pow', 'Add', 'Constant', 'ConstantOfShape']);
	let shapes = 0;
	let pow: NodeProto | undefined;
	const seen = new Set<NodeProto>();
	const stack = [t];
	while (stack.length) {
		const n = r.node(stack.pop()!);
		if (!n || seen.has(n)) continue;
		seen.add(n);
		if (n.opType === 'Shape') {
			shapes++;
			continue; // a shape, not the tensor's values
		}
		if (!allowed.has(n.opType!)) return false;
		if (n.opType === 'Pow') {
			if (pow) return false;
			pow = n;
		}
		for (const i of n.input!) if (i) stack.push(i);
	}
	return shapes > 0 && !!pow && r.scalar(pow.input![1]) === 0.5;
}

function reachesScores(r: GraphReader, t: string): boolean {
	for (let depth = 0; depth < 16; depth++) {
		const n = r.node(t);
		if (!n) return false;
		if (n.opType === 'MatMul') return !n.input!.some((x) => r.isConst(x));
		if (!(SHAPE_OPS.has(n.opType!) || n.opType === 'Mul' || n.opType === 'Div')) return false;
		t = n.input!.find((x) => !r.isConst(x)) ?? n.input![0];
	}
	return false;
}

/** A sliding window from the mask's structure: Greater(key, Sub(query, w)) among the mask's ancestors; 0 without one. */
function maskWindow(r: GraphReader, mask: string): number {
	let window = 0;
	for (const n of r.g.ancestors([mask])) {
		if (n.opType !== 'Greater' && n.opType !== 'Less') continue;
		const sub = r.node(n.input![n.opType === 'Greater' ? 1 : 0]);
		const w = sub?.opType === 'Sub' ? r.scalar(sub.input![1]) : null;
		if (w === null || !Number.isInteger(w) || w <= 0)
			throw new Refusal(`its attention mask compares positions in a way Loupe cannot read (${n.opType} "${n.name}")`);
		window = w;
	}
	return window;
}

/**
 * RoPE at `t` (the tensor the scores MatMul reads, back through shape ops): a·cos + b·sin, where b
 * is rotate_half(a) (Slice, Neg, Concat) or a second projection whose weight is a's with each column
 * pair swapped (Loupe's build of llama2.c). Which table is cos: from Cos/Sin nodes, or its values.
 */
function rope(r: GraphReader, t: string, fromStream: Set<string>, hs: number, what: string): Rope {
	const add = r.node(t);
	const terms = add?.opType === 'Add' ? add.input!.map((x) => r.node(x)) : [];
	// No RoPE (GPT-2: learned positions): the scores read the projection itself.
	if (add?.opType !== 'Add') return { input: t, invFreq: new Float64Array(0), halves: false };
	if (terms.length !== 2 || terms.some((m) => m?.opType !== 'Mul'))
		throw new Refusal(`${what} are not turned by RoPE (x·cos + rotated(x)·sin) before the scores`);
	const split = terms.map((m) => {
		const k = m!.input!.findIndex((x) => fromStream.has(x));
		if (k < 0 || fromStream.has(m!.input![1 - k])) throw new Refusal(`${what}: a RoPE product is not data × table`);
		return { data: m!.input![k], table: m!.input![1 - k] };
	});
	const rotated = split.findIndex((s) => {
		const c = r.node(s.data);
		return c?.opType === 'Concat' && r.node(c.input![0])?.opType === 'Neg';
	});
	if (rotated >= 0) {
		const plain = split[1 - rotated];
		const c = r.node(split[rotated].data)!;
		const sources = [r.node(c.input![0])!.input![0], c.input![1]].map((x) => r.node(x));
		if (sources.some((s) => s?.opType !== 'Slice' || s.input![0] !== plain.data))
			throw new Refusal(`${what}: the rotated half is not rotate_half of the same tensor`);
		const cos = [...r.g.ancestors([plain.table])].find((n) => n.opType === 'Cos');
		if (!cos) throw new Refusal(`${what}: the RoPE table is not computed by a Cos`);
		const cat = r.node(cos.input![0]);
		if (cat?.opType !== 'Concat' || cat.input!.length !== 2 || cat.input![0] !== cat.input![1])
			throw new Refusal(`${what}: RoPE covers part of each head only (partial rotary), which Loupe does not model`);
		const inv = [...r.g.ancestors([cos.input![0]])]
			.flatMap((n) => n.input!)
			.filter((x) => x && r.isConst(x))
			.map((x) => r.numbers(x))
			.filter((v): v is number[] => !!v && v.length === hs / 2);
		if (new Set(inv.map(String)).size !== 1) throw new Refusal(`${what}: no single inv_freq of ${hs / 2} values behind the RoPE table`);
		return { input: plain.data, invFreq: Float64Array.from(inv[0]), halves: true };
	}
	// Loupe's build: both data operands are projections of one input; tables are stored [seqLen, width].
	const proj = split.map((s) => r.projection(s.data));
	const tables = split.map((s) => {
		const gather = r.node(s.table);
		const name = gather?.opType === 'Gather' ? gather.input![0] : '';
		return r.g.initializers.has(name) ? r.floats(name, `${what}' RoPE table`) : null;
	});
	if (proj.some((p) => !p) || tables.some((x) => !x) || proj[0]!.x !== proj[1]!.x)
		throw new Refusal(`${what}: RoPE is neither rotate_half nor a pair-swapped projection`);
	const cosSlot = tables.findIndex((x) => x!.data.subarray(0, x!.dims[1]).every((v) => v === 1));
	if (cosSlot < 0) throw new Refusal(`${what}: neither RoPE table is cos (1 at position 0)`);
	const [cosT, sinT] = [tables[cosSlot]!, tables[1 - cosSlot]!];
	const [a, b] = [proj[cosSlot]!, proj[1 - cosSlot]!];
	const wa = r.floats(a.weight, `${what}' projection`);
	const wb = r.floats(b.weight, `${what}' swapped projection`);
	const [rows, cols] = wa.dims;
	const swapped = wb.dims[1] === cols && wa.data.every((v, i) => Object.is(v, wb.data[i - (i % cols) + ((i % cols) ^ 1)]));
	if (!swapped || cosT.dims[0] < 2 || rows === 0)
		throw new Refusal(`${what}: the second RoPE projection is not the first with pairs swapped`);
	const width = cosT.dims[1];
	// Row 1 of the tables: cos(f_j) at 2j, +sin(f_j) at 2j + 1 (llama2.c's pairs).
	const invFreq = Float64Array.from({ length: hs / 2 }, (_, j) => Math.atan2(sinT.data[width + 2 * j + 1], cosT.data[width + 2 * j]));
	return { input: a.node.output![0], invFreq, halves: false, tableRows: cosT.dims[0] };
}

/**
 * The MLP at `h` (what W_down reads), x = hook_mlp_in: gated, act(x W_gate) ⊙ (x W_up), or plain,
 * act(x W_1 + b_1) (GPT-2); the activation SiLU or tanh-GELU, recognised from its ops and constants.
 */
function mlpOf(
	r: GraphReader,
	h: string,
	mlpIn: string,
	what: string
): { gate: Linear; up?: Linear; activation: ExportedShape['mlpActivation'] } {
	const x = r.back(mlpIn, CASTS);
	const readsX = (t: string) => {
		const p = r.linear(t, what);
		return p && r.back(p.x, CASTS) === x ? p : null;
	};
	const stop = new Set([mlpIn, x]);
	const activationOf = (t: string) => {
		const inner = [...r.g.ancestors([t], stop)];
		const firsts = inner.filter((n) => n.output!.some((o) => readsX(o)) && WEIGHT_NODE.has(n.opType!));
		if (firsts.length !== 1) throw new Refusal(`${what}: the activation does not read exactly one projection of hook_mlp_in`);
		const proj = readsX(firsts[0].output![0])!;
		// The nodes between the projection and `t` on the data path (not the shape arithmetic of reshapes).
		const data = r.g.descendants(firsts[0].output![0]);
		const within = [...r.g.ancestors([t], new Set([...stop, firsts[0].output![0]]))].filter((n) => n.output!.some((o) => data.has(o)));
		const ops = new Set(within.filter((n) => n.opType !== 'Constant' && n.opType !== 'Reshape').map((n) => n.opType!));
		const only = (allowed: string[]) => [...ops].every((op) => allowed.includes(op) || CASTS.has(op));
		// tanh-GELU's constants, √(2/π) and 0.044715, as float32 (torch writes them out).
		const constants = within.flatMap((n) => n.input!.filter((c) => c && r.isConst(c)).map((c) => r.scalar(c)));
		const has = (c: number) => constants.some((v) => v !== null && Math.abs(v - c) < 1e-6);
		if (ops.has('Sigmoid') && only(['Sigmoid', 'Mul'])) return { proj, activation: 'silu' as const };
		if (ops.has('Tanh') && only(['Tanh', 'Mul', 'Pow', 'Add']) && has(0.044715) && has(Math.sqrt(2 / Math.PI)))
			return { proj, activation: 'gelu_tanh' as const };
		throw new Refusal(`${what}: the activation (${[...ops].join(', ')}) is neither SiLU nor tanh-GELU`);
	};
	const mul = r.node(r.back(h, CASTS));
	if (mul?.opType === 'Mul') {
		// Gated: one factor is a projection of mlp_in (up), the other an activation of another (gate).
		const k = mul.input!.findIndex((t) => readsX(t));
		if (k >= 0) {
			const up = readsX(mul.input![k])!;
			const gate = activationOf(mul.input![1 - k]);
			// SiLU of a plain MLP is also a Mul by a projection (x · σ(x)): the same weight twice.
			if (gate.proj.weight !== up.weight) return { gate: gate.proj, up, activation: gate.activation };
		}
	}
	const plain = activationOf(h);
	return { gate: plain.proj, activation: plain.activation };
}

const WEIGHT_NODE = new Set(['MatMul', 'Gemm', 'Split']);

/** Row order within each head that turns rotate_half's (j, j + hs/2) pairs into llama2.c's (2j, 2j + 1). */
function halvesToPairs(hs: number): Int32Array {
	const p = new Int32Array(hs);
	for (let j = 0; j < hs / 2; j++) ((p[2 * j] = j), (p[2 * j + 1] = j + hs / 2));
	return p;
}

/** New row h·hs + i = old row h·hs + perm[i], for [rows, cols] row-major; unchanged without `perm`. */
function permuteRows(w: Float32Array, rows: number, cols: number, hs: number, perm: Int32Array | null): Float32Array {
	if (!perm) return w;
	const out = new Float32Array(rows * cols);
	for (let r = 0; r < rows; r++) {
		const src = r - (r % hs) + perm[r % hs];
		out.set(w.subarray(src * cols, (src + 1) * cols), r * cols);
	}
	return out;
}

/** The base the frequencies come from (invFreq[j] = base^(−2j/hs)), for the config (0: no RoPE); the forward reads invFreq itself. */
function ropeBase(invFreq: Float64Array, hs: number): number {
	return invFreq.length > 1 ? Math.pow(invFreq[1], -hs / 2) : 0;
}

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
 * What is refused, with the reason: LayerNorm models (GPT-2, GPT-NeoX), parallel blocks, biases,
 * partial rotary, activations other than SiLU and tanh-GELU, and anything not found where the
 * structure above puts it.
 */
import { LoupeError } from '../../errors';
import type { LlamaLayerWeights } from '../llama2c/checkpoint';
import type { DecoderWeights, ExportedLayer, ExportedShape } from '../../attribution/exported-shape';
import type { ExportedDecoder } from './hook-manifest';
import { hookName } from '../hooks';
import type { ExternalFiles } from './initializer-bytes';
import { unembeddingWeight } from './unembedding';
import { CASTS, GraphReader, Refusal, SHAPE_OPS, transposed } from './decoder-weights-read';

const WHAT_TO_OPEN = 'Open stories260K (the default model), or a Llama- or Gemma-3-shaped export, to build a graph.';

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
	if (t.architecture === 'gpt2' || t.architecture === 'gpt-neox' || t.architecture === 'decoder')
		throw new Refusal(
			`it is ${t.architecture === 'gpt-neox' ? 'GPT-NeoX-shaped (LayerNorm, parallel attention and MLP)' : t.architecture === 'gpt2' ? 'GPT-2-shaped (LayerNorm, learned positions, biases)' : 'a LayerNorm decoder'}, and the attribution models RMSNorm decoders (Llama, Gemma 3) so far`
		);
	if (t.addsPerLayer.some((n) => n !== 2)) throw new Refusal('its layers are not one attention add then one MLP add');
	const D = t.dModel;
	const V = t.vocabSize;
	const L = t.nLayers;
	const kv0 = io.kv[0];
	const hs = kv0 && typeof kv0.dims[3] === 'number' ? kv0.dims[3] : NaN;
	const nKv = kv0 && typeof kv0.dims[1] === 'number' ? kv0.dims[1] : NaN;
	if (!Number.isInteger(hs) || !Number.isInteger(nKv) || io.kv.length !== 2 * L)
		throw new Refusal('its KV cache does not give [batch, kv_heads, past, head_dim] with fixed heads and head size for every layer');

	const embedding = r.floats(t.embedding, 'the token embedding').data;
	const stream0 = t.boundaries[0].tensor;
	let embedScale = 1;
	const first = r.node(stream0);
	if (first?.opType === 'Mul') {
		const c = first.input!.map((x) => r.scalar(x)).find((v) => v !== null);
		if (c == null) throw new Refusal("the embedding's Mul is not by a constant");
		embedScale = c;
	} else if (!(first?.opType === 'Gather' && first.input![0] === t.embedding))
		throw new Refusal(`the residual stream starts at a ${first?.opType ?? 'graph input'}, not the embedding Gather (learned positions?)`);
	const fromStream = g.descendants(stream0);

	let eps: number | undefined;
	const norm = (y: string, what: string) => {
		const n = r.rmsNorm(y, what);
		if (eps === undefined) eps = n.eps;
		else if (n.eps !== eps) throw new Refusal(`its norms use two epsilons (${eps} and ${n.eps}); Loupe's forward takes one`);
		return n;
	};
	const site = (l: number, kind: 'attn_out' | 'mlp_in' | 'mlp_out') => {
		const s = t.sites[hookName(l, kind)];
		if (!s || s.split) throw new Refusal(`surgery found no plain tensor for ${hookName(l, kind)}`);
		return s.tensor;
	};
	/** The operand of an Add whose other operand is `other` (through casts), or null. */
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
	let nHeads = 0;
	let maxRows = Infinity;
	for (let l = 0; l < L; l++) {
		const at = (what: string) => `layer ${l}'s ${what}`;
		// Attention, from its output back.
		const attnOut = site(l, 'attn_out');
		let oProj = r.projection(attnOut);
		let postAttnNorm: Float32Array | undefined;
		if (!oProj) {
			const n = norm(attnOut, at('attention output (hook_attn_out)'));
			postAttnNorm = n.weight;
			oProj = r.projection(n.input);
			if (!oProj) throw new Refusal(`${at('post-attention norm')} does not read an output projection`);
		}
		const pv = r.node(r.back(oProj.x, SHAPE_OPS));
		if (pv?.opType !== 'MatMul' || pv.input!.some((x) => r.isConst(x)))
			throw new Refusal(`${at('output projection')} does not read attention's probabilities × values`);
		const softmax = r.node(r.back(pv.input![0], SHAPE_OPS));
		if (softmax?.opType !== 'Softmax') throw new Refusal(`${at('attention')} does not mix values by a Softmax`);
		const { scores, scale, mask } = scoresOf(r, softmax.input![0], at('attention scores'));
		if (attnScale === undefined) attnScale = scale;
		else if (Math.abs(scale - attnScale) > 1e-7 * attnScale) throw new Refusal('its layers scale attention scores differently');
		const window = mask ? maskWindow(r, mask) : 0;

		const qRope = rope(r, r.back(scores.input![0], SHAPE_OPS), fromStream, hs, at('queries'));
		const kRope = rope(r, r.back(scores.input![1], SHAPE_OPS), fromStream, hs, at('keys'));
		if (qRope.halves !== kRope.halves || qRope.invFreq.some((f, j) => Math.abs(f - kRope.invFreq[j]) > 1e-6 * f))
			throw new Refusal(`${at('queries and keys')} are not turned by the same RoPE`);
		if (qRope.tableRows) maxRows = Math.min(maxRows, qRope.tableRows);
		const headNorm = (x: string, what: string) => {
			const p = r.projection(r.back(x, SHAPE_OPS));
			if (p) return { proj: p, weight: undefined };
			const n = norm(r.back(x, SHAPE_OPS), at(what));
			if (n.weight.length !== hs) throw new Refusal(`${at(what)} is not over one head's ${hs} values`);
			const proj = r.projection(r.back(n.input, SHAPE_OPS));
			if (!proj) throw new Refusal(`${at(what)} does not read a projection`);
			return { proj, weight: n.weight };
		};
		const q = headNorm(qRope.input, 'query norm');
		const k = headNorm(kRope.input, 'key norm');
		const vProj = r.projection(r.back(pv.input![1], SHAPE_OPS));
		if (!vProj) throw new Refusal(`${at('values')} are not a projection of the residual stream`);
		const xAtt = r.back(q.proj.x, CASTS);
		if (r.back(k.proj.x, CASTS) !== xAtt || r.back(vProj.x, CASTS) !== xAtt)
			throw new Refusal(`${at('queries, keys and values')} do not read one normalised input`);
		const attnNorm = norm(xAtt, at('attention input norm'));
		if (r.back(attnNorm.input, CASTS) !== r.back(t.boundaries[l].tensor, CASTS))
			throw new Refusal(`${at('attention input norm')} does not read the residual stream`);

		const wq = r.floats(q.proj.weight, at('W_q'));
		const wk = r.floats(k.proj.weight, at('W_k'));
		const wv = r.floats(vProj.weight, at('W_v'));
		const wo = r.floats(oProj.weight, at('W_o'));
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

		// The MLP, from its output back, and the two residual adds.
		const mlpIn = site(l, 'mlp_in');
		const ffnNorm = norm(mlpIn, at('MLP input norm (hook_mlp_in)'));
		if (!addOf(ffnNorm.input, t.boundaries[l].tensor, attnOut))
			throw new Refusal(`${at('MLP input norm')} does not read resid_pre + attn_out (the attention's residual add)`);
		const mlpOut = site(l, 'mlp_out');
		let down = r.projection(mlpOut);
		let postFfnNorm: Float32Array | undefined;
		if (!down) {
			const n = norm(mlpOut, at('MLP output (hook_mlp_out)'));
			postFfnNorm = n.weight;
			down = r.projection(n.input);
			if (!down) throw new Refusal(`${at('post-feedforward norm')} does not read a down projection`);
		}
		if (!addOf(t.boundaries[l + 1].tensor, ffnNorm.input, mlpOut))
			throw new Refusal(`${at('output')} is not the attention add's sum + mlp_out`);
		const glu = gatedMlp(r, down.x, mlpIn, at('MLP'));
		if (mlpActivation === undefined) mlpActivation = glu.activation;
		else if (mlpActivation !== glu.activation) throw new Refusal('its layers use different MLP activations');
		const w1 = r.floats(glu.gate, at('W_gate'));
		const w3 = r.floats(glu.up, at('W_up'));
		const w2 = r.floats(down.weight, at('W_down'));
		const F = w1.dims[1];
		if (w1.dims[0] !== D || w3.dims[0] !== D || w3.dims[1] !== F || w2.dims[0] !== F || w2.dims[1] !== D)
			throw new Refusal(`${at('MLP')} has shapes gate [${w1.dims}], up [${w3.dims}], down [${w2.dims}]`);

		layers.push({
			rmsAtt: attnNorm.weight,
			wq: rows(wq.data, qDim, D),
			wk: rows(wk.data, nKv * hs, D),
			wv: transposed(wv.data, D, nKv * hs),
			wo: transposed(wo.data, qDim, D),
			rmsFfn: ffnNorm.weight,
			w1: transposed(w1.data, D, F),
			w2: transposed(w2.data, F, D),
			w3: transposed(w3.data, D, F)
		});
		shapes.push({
			invFreq: qRope.invFreq,
			window,
			qNorm: q.weight && permuteRows(q.weight, hs, 1, hs, perm),
			kNorm: k.weight && permuteRows(k.weight, hs, 1, hs, perm),
			postAttnNorm,
			postFfnNorm
		});
	}
	const hidden = layers[0].w1.length / D;
	if (layers.some((x) => x.w1.length !== hidden * D)) throw new Refusal('its MLPs have different widths');

	// The final norm and the head.
	const head = unembeddingWeight(d);
	let writer = r.node(io.logits);
	while (writer && (writer.opType === 'Identity' || writer.opType === 'Reshape')) writer = r.node(writer.input![0]);
	if (!head || !writer) throw new Refusal('its logits are not a product of the last hidden state with a stored head');
	const finalNorm = norm(r.back(writer.input![0], SHAPE_OPS), 'the final norm');
	if (r.back(finalNorm.input, CASTS) !== r.back(t.boundaries[L].tensor, CASTS))
		throw new Refusal('the final norm does not read the last residual boundary');
	// W_U as [V, D]: a Gemm with transB stores it so; a MatMul stores [D, V] (a tied head's transposed copy, or its own).
	const hw = r.floats(head.name, 'the LM head');
	const unembedding = head.transposed ? hw.data : transposed(hw.data, D, V);
	const tied = unembedding.length === embedding.length && unembedding.every((v, i) => Object.is(v, embedding[i]));
	const classifier = tied ? embedding : unembedding;

	const seqLen = Math.min(o.maxSeqLen ?? 4096, maxRows);
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
			layers: shapes
		}
	};
}

/** Back from the Softmax's input: the scores MatMul, the constant scale on the way, and the additive mask. */
function scoresOf(r: GraphReader, t: string, what: string) {
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
		} else if (op === 'Add' && !mask) {
			// The mask is the operand that is not the scores: the one with no MatMul of two computed tensors behind it.
			const k = n.input!.findIndex((x) => !reachesScores(r, x));
			if (k < 0 || !reachesScores(r, n.input![1 - k])) throw new Refusal(`${what} have an Add that is not scores + mask`);
			mask = n.input![k];
			t = n.input![1 - k];
		} else if (op === 'MatMul' && !n.input!.some((x) => r.isConst(x))) return { scores: n, scale, mask };
		else throw new Refusal(`${what} pass through ${op} "${n.name}", which Loupe does not model (softcapping?)`);
	}
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

/** The gated MLP at `h` (what W_down reads): act(x W_gate) ⊙ (x W_up), x = mlp_in; SiLU or tanh-GELU. */
function gatedMlp(r: GraphReader, h: string, mlpIn: string, what: string) {
	const mul = r.node(h);
	if (mul?.opType !== 'Mul') throw new Refusal(`${what}: W_down does not read a product (a gated MLP)`);
	const x = r.back(mlpIn, CASTS);
	const reads = (p: ReturnType<GraphReader['projection']>) => !!p && r.back(p.x, CASTS) === x;
	const k = mul.input!.findIndex((t) => reads(r.projection(t)));
	if (k < 0) throw new Refusal(`${what}: neither factor of the gate product is a projection of hook_mlp_in`);
	const up = r.projection(mul.input![k])!;
	const inner = [...r.g.ancestors([mul.input![1 - k]], new Set([mlpIn]))];
	const gates = inner.filter((n) => reads(r.projection(n.output![0])));
	if (gates.length !== 1) throw new Refusal(`${what}: the activation does not read exactly one projection of hook_mlp_in`);
	const ops = new Set(inner.filter((n) => n !== gates[0] && n.opType !== 'Constant').map((n) => n.opType!));
	const only = (allowed: string[]) => [...ops].every((op) => allowed.includes(op) || CASTS.has(op));
	// tanh-GELU's constants, √(2/π) and 0.044715, as float32 (torch writes them out).
	const constants = inner.flatMap((n) => n.input!.filter((x) => x && r.isConst(x)).map((x) => r.scalar(x)));
	const has = (c: number) => constants.some((v) => v !== null && Math.abs(v - c) < 1e-6);
	let activation: ExportedShape['mlpActivation'];
	if (ops.has('Sigmoid') && only(['Sigmoid', 'Mul'])) activation = 'silu';
	else if (ops.has('Tanh') && only(['Tanh', 'Mul', 'Pow', 'Add']) && has(0.044715) && has(Math.sqrt(2 / Math.PI))) activation = 'gelu_tanh';
	else throw new Refusal(`${what}: the activation (${[...ops].join(', ')}) is neither SiLU nor tanh-GELU`);
	return { gate: gates[0].input![1], up: up.weight, activation };
}

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

/** The base the frequencies come from (invFreq[j] = base^(−2j/hs)), for the config; the forward reads invFreq itself. */
function ropeBase(invFreq: Float64Array, hs: number): number {
	return invFreq.length > 1 ? Math.pow(invFreq[1], -hs / 2) : 10000;
}

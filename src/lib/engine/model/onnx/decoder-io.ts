/**
 * What a decoder graph reads and writes, by role: the token ids, positions, the attention mask, the
 * KV cache (each past input paired with its present output by structure, in kv-cache.ts), a static
 * cache's write position and valid length, and whether the final output is logits or, in a base
 * model with no LM head, a hidden state.
 * `stepFeeds` makes the inputs of one forward step for batch 1, whatever the exporter's names,
 * layouts ([B,H,P,D], K and V stacked as [2,B,H,P,D], or a fixed-size buffer) and integer widths.
 */
import type * as Ort from 'onnxruntime-web';
import { DataType, dataTypeName, type GraphIndex, type ValueInfoProto } from './graph';
import { kvCacheInputs, pairKvCache } from './kv-cache';

export type Dim = number | string;
export interface IoTensor {
	name: string;
	dtype: string;
	dims: Dim[];
}

export interface KvPair {
	past: string;
	present: string;
	dtype: string;
	/** The past input's dims: numbers where fixed, names where symbolic. */
	dims: Dim[];
	/** Which dim grows with the sequence (for a static cache: the one TensorScatter writes along). */
	seqAxis: number;
	/**
	 * A static cache's fixed length (TensorScatter writes each step into it in place): the past is
	 * always the whole buffer, zeros at first, and `present` is fed back whole. Absent for a cache
	 * that grows by Concat.
	 */
	capacity?: number;
	/** How structure proved the pairing (for the manifest and error messages). */
	via?: string;
}

export interface DecoderIo {
	inputIds: IoTensor;
	positionIds?: IoTensor;
	attentionMask?: IoTensor;
	/** Other integer inputs filled with zeros (token_type_ids). */
	zeros: IoTensor[];
	kv: KvPair[];
	/** Static caches: where this step's keys and values are written (TensorScatter's write_indices), [B] = tokens already cached. */
	writeIndices?: IoTensor;
	/** Static caches: how much of the cache is valid after this step (Attention-24's nonpad_kv_seqlen), [B] = tokens cached + new. */
	kvSeqLen?: IoTensor;
	/** The final output: logits [B,S,vocab], or the last hidden state [B,S,d_model] where `lmHead` is false. */
	logits: string;
	logitsDtype?: string;
	/**
	 * False when the final output is a hidden state, not logits (a base model exported without its LM
	 * head): hooks, SAEs and corpus runs work, writing text does not. Absent means logits (graphs
	 * Loupe builds itself).
	 */
	lmHead?: boolean;
	/** Longest sequence the graph accepts, where a fixed dim (a 4-D mask, a position table, a static cache) says so. */
	maxSeqLen?: number;
}

function ioTensor(v: ValueInfoProto): IoTensor {
	const t = v.type?.tensorType;
	return {
		name: v.name!,
		dtype: dataTypeName[t?.elemType ?? 0] ?? `type ${t?.elemType}`,
		dims: (t?.shape?.dim ?? []).map((d) => (d.dimValue != null && Number(d.dimValue) > 0 ? Number(d.dimValue) : (d.dimParam ?? '?')))
	};
}

export function describeDecoderIo(g: GraphIndex): DecoderIo {
	const kvNames = kvCacheInputs(g);
	const outputs = [...g.graphOutputs.values()];
	const kv: KvPair[] = [];
	const writeIndexInputs = new Set<string>();
	for (const link of pairKvCache(g, kvNames)) {
		const io = ioTensor(g.graphInputs.get(link.past)!);
		let seqAxis: number;
		let capacity: number | undefined;
		if (link.static) {
			if (!link.writeIndices)
				throw new Error(
					`The static KV cache "${link.past}" is updated by a TensorScatter with no write_indices graph input: Loupe cannot say where each step goes. Export with write_indices as an input, or with a dynamic (Concat) cache.`
				);
			writeIndexInputs.add(link.writeIndices);
			seqAxis = scatterAxis(g, link.past, io.dims.length);
			const c = io.dims[seqAxis];
			if (typeof c !== 'number')
				throw new Error(
					`The static KV cache "${link.past}" has a symbolic length (${c}) on the axis TensorScatter writes: Loupe needs the cache's fixed capacity. Export with a fixed cache size.`
				);
			capacity = c;
		} else {
			const symbolic = io.dims.map((d, i) => (typeof d === 'string' ? i : -1)).filter((i) => i >= 0);
			// [batch, …, past_len, head_dim]: the growing axis is the last symbolic one.
			seqAxis = symbolic.length ? symbolic[symbolic.length - 1] : io.dims.length - 2;
		}
		kv.push({ past: link.past, present: link.present, dtype: io.dtype, dims: io.dims, seqAxis, capacity, via: link.via });
	}
	if (kv.some((p) => p.capacity) && kv.some((p) => !p.capacity))
		throw new Error(
			'The graph mixes a static (TensorScatter) and a growing (Concat) KV cache: Loupe cannot feed both. Pick an export with one cache layout.'
		);
	if (writeIndexInputs.size > 1)
		throw new Error(
			`The static KV caches read their write position from several inputs (${[...writeIndexInputs].join(', ')}): Loupe feeds one.`
		);

	const isInt = (v: ValueInfoProto) => [DataType.INT64, DataType.INT32].includes(v.type?.tensorType?.elemType ?? 0);
	const writeIndices = [...writeIndexInputs].map((n) => g.graphInputs.get(n)!)[0];
	const kvSeqLen = nonpadInput(g);
	const rest = [...g.graphInputs.values()].filter((v) => !kvNames.has(v.name!) && v !== writeIndices && v !== kvSeqLen);
	const byName = (re: RegExp) => rest.find((v) => re.test(v.name!));
	const ids = byName(/^input_ids$/) ?? rest.find(isInt);
	if (!ids) throw new Error('The graph has no token-id input.');
	// position_ids [B,S]; a `cache_position` [S] is another thing and is refused below.
	const pos = rest.find((v) => /position_ids/.test(v.name!) && ioTensor(v).dims.length === 2);
	const mask = byName(/mask/);
	const others = rest.filter((v) => v !== ids && v !== pos && v !== mask);
	for (const z of others)
		if (!(isInt(z) && /token_type/.test(z.name!)))
			throw new Error(
				`Loupe does not know how to fill the graph input "${z.name}" (${ioTensor(z).dtype} ${JSON.stringify(ioTensor(z).dims)}): ` +
					"it feeds token ids, positions, an attention mask, token_type_ids (zeros), the KV cache and a static cache's write_indices / nonpad_kv_seqlen. " +
					'Pick an export whose inputs are those (the Hugging Face decoder convention).'
			);
	const head = finalOutput(
		g,
		outputs.filter((o) => !kv.some((p) => p.present === o.name)),
		ids.name!
	);
	const maskIo = mask ? ioTensor(mask) : undefined;
	const fixedMask = maskIo && maskIo.dims.length === 4 && typeof maskIo.dims[3] === 'number' ? (maskIo.dims[3] as number) : undefined;
	const capacity = kv.find((p) => p.capacity)?.capacity;
	const limits = [fixedMask, capacity].filter((n): n is number => n !== undefined);
	return {
		inputIds: ioTensor(ids),
		positionIds: pos ? ioTensor(pos) : undefined,
		attentionMask: maskIo,
		zeros: others.map(ioTensor),
		kv,
		writeIndices: writeIndices ? ioTensor(writeIndices) : undefined,
		kvSeqLen: kvSeqLen ? ioTensor(kvSeqLen) : undefined,
		logits: head.output.name!,
		logitsDtype: ioTensor(head.output).dtype,
		lmHead: head.lmHead,
		maxSeqLen: limits.length ? Math.min(...limits) : undefined
	};
}

/** The axis the TensorScatter that updates `past` writes along (its `axis`, default -2). */
function scatterAxis(g: GraphIndex, past: string, rank: number): number {
	const scatter = [...g.descendants(past)].flatMap((t) => g.consumers.get(t) ?? []).find((n) => n.opType === 'TensorScatter');
	const a = Number(scatter?.attribute?.find((x) => x.name === 'axis')?.i ?? -2);
	return a < 0 ? a + rank : a;
}

/** Attention-24's nonpad_kv_seqlen (input 6), where a graph input feeds it (through Cast). */
function nonpadInput(g: GraphIndex): ValueInfoProto | undefined {
	for (const n of g.nodes) {
		if (n.opType !== 'Attention' || (n.domain && n.domain !== 'ai.onnx') || !n.input![6]) continue;
		for (let t = n.input![6]; ;) {
			if (g.graphInputs.has(t)) return g.graphInputs.get(t);
			const p = g.producer.get(t);
			if (!p || !['Cast', 'Identity'].includes(p.node.opType!)) break;
			t = p.node.input![0];
		}
	}
	return undefined;
}

/**
 * The final output and whether it is logits: by structure, its width is the vocabulary (the token
 * embedding's rows) or it is written by a product with a [d_model, vocab] weight. A [B,S,d_model]
 * output from a norm is a base model's hidden state.
 */
function finalOutput(g: GraphIndex, candidates: ValueInfoProto[], ids: string): { output: ValueInfoProto; lmHead: boolean } {
	if (!candidates.length) throw new Error('The graph has no output besides its KV cache.');
	const emb = tokenEmbedding(g, ids);
	const width = (o: ValueInfoProto) => productWidth(g, o.name!) ?? (ioTensor(o).dims.at(-1) as Dim | undefined);
	if (!emb) return { output: candidates[0], lmHead: true }; // nothing to tell by: keep calling it logits
	const logits = candidates.find((o) => width(o) === emb.vocab && (emb.vocab !== emb.dModel || productWidth(g, o.name!) !== undefined));
	if (logits) return { output: logits, lmHead: true };
	const hidden = candidates.find((o) => width(o) === emb.dModel);
	if (hidden) return { output: hidden, lmHead: false };
	return { output: candidates[0], lmHead: true };
}

/** [vocab, d_model] of the token embedding (a Gather on a constant matrix indexed by the ids, through reshapes and casts). */
function tokenEmbedding(g: GraphIndex, ids: string): { vocab: number; dModel: number } | undefined {
	const through = new Set(['Cast', 'Identity', 'Reshape', 'Flatten', 'Unsqueeze', 'Squeeze']);
	const reached = new Set([ids]);
	const stack = [ids];
	while (stack.length)
		for (const n of g.consumers.get(stack.pop()!) ?? []) {
			const weight =
				n.opType === 'Gather' && reached.has(n.input![1])
					? n.input![0]
					: n.opType === 'EmbedLayerNormalization' && reached.has(n.input![0])
						? n.input![2]
						: undefined;
			if (weight) {
				const dims = constantDims(g, weight);
				if (dims?.length === 2) return { vocab: dims[0], dModel: dims[1] };
			}
			if (through.has(n.opType!) && !reached.has(n.output![0])) (reached.add(n.output![0]), stack.push(n.output![0]));
		}
	return undefined;
}

/** The output width of the weight product that writes `t` (MatMul by [K, N], Gemm by [N, K] with transB), if one does. */
function productWidth(g: GraphIndex, t: string): number | undefined {
	let p = g.producer.get(t)?.node;
	while (p && ['Cast', 'Identity', 'Reshape'].includes(p.opType!)) p = g.producer.get(p.input![0])?.node;
	if (!p || !(p.opType === 'MatMul' || p.opType === 'Gemm')) return undefined;
	let w = p.input![1];
	let transposed = p.opType === 'Gemm' && p.attribute?.some((a) => a.name === 'transB' && Number(a.i) === 1);
	const t2 = g.producer.get(w)?.node;
	if (t2?.opType === 'Transpose') ((w = t2.input![0]), (transposed = !transposed));
	const dims = constantDims(g, w);
	if (dims?.length !== 2) return undefined;
	return transposed ? dims[0] : dims[1];
}

function constantDims(g: GraphIndex, name: string): number[] | undefined {
	for (let t = name; ;) {
		const init = g.initializers.get(t);
		if (init) return (init.dims ?? []).map(Number);
		const p = g.producer.get(t)?.node;
		if (!p || !['Cast', 'Identity', 'DequantizeLinear'].includes(p.opType!)) return undefined;
		t = p.input![0];
	}
}

type OrtModule = typeof Ort;

function intTensor(ort: OrtModule, dtype: string, values: number[], dims: number[]): Ort.Tensor {
	if (dtype === 'int64') return new ort.Tensor('int64', BigInt64Array.from(values, BigInt), dims);
	if (dtype === 'int32') return new ort.Tensor('int32', Int32Array.from(values), dims);
	if (dtype === 'float32') return new ort.Tensor('float32', Float32Array.from(values), dims);
	if (dtype === 'float16')
		return new ort.Tensor(
			'float16',
			Uint16Array.from(values, (v) => (v ? 0x3c00 : 0)),
			dims
		);
	if (dtype === 'bool') return new ort.Tensor('bool', Uint8Array.from(values), dims);
	throw new Error(`Cannot make a ${dtype} input.`);
}

/** Inputs for one step: `tokens` appended after `position` tokens already in the cache (batch 1). */
export function stepFeeds(ort: OrtModule, io: DecoderIo, tokens: number[], position: number): Record<string, Ort.Tensor> {
	const S = tokens.length;
	const P = position;
	const feeds: Record<string, Ort.Tensor> = { [io.inputIds.name]: intTensor(ort, io.inputIds.dtype, tokens, [1, S]) };
	if (io.positionIds)
		feeds[io.positionIds.name] = intTensor(
			ort,
			io.positionIds.dtype,
			tokens.map((_, i) => P + i),
			[1, S]
		);
	const m = io.attentionMask;
	if (m && m.dims.length === 2) {
		// A static cache's mask spans the whole buffer where its length is fixed: 1 on what is written.
		const n = typeof m.dims[1] === 'number' && io.kv.some((p) => p.capacity) ? m.dims[1] : P + S;
		feeds[m.name] = intTensor(
			ort,
			m.dtype,
			Array.from({ length: n }, (_, i) => (i < P + S ? 1 : 0)),
			[1, n]
		);
	} else if (m && m.dims.length === 4) {
		// A causal mask the graph slices itself ([1,1,max,max], 1 = may attend), as Megatron's export reads it.
		const n = typeof m.dims[3] === 'number' ? m.dims[3] : P + S;
		const v = new Array(n * n);
		for (let r = 0; r < n; r++) for (let c = 0; c < n; c++) v[r * n + c] = c <= r ? 1 : 0;
		feeds[m.name] = intTensor(ort, m.dtype, v, [1, 1, n, n]);
	} else if (m) throw new Error(`Unknown attention mask layout ${JSON.stringify(m.dims)}.`);
	for (const z of io.zeros) feeds[z.name] = intTensor(ort, z.dtype, new Array(S).fill(0), [1, S]);
	if (io.writeIndices) feeds[io.writeIndices.name] = intTensor(ort, io.writeIndices.dtype, [P], [1]);
	if (io.kvSeqLen) feeds[io.kvSeqLen.name] = intTensor(ort, io.kvSeqLen.dtype, [P + S], [1]);
	const capacity = io.kv.find((p) => p.capacity)?.capacity;
	if (capacity !== undefined && P + S > capacity)
		throw new Error(`The static KV cache holds ${capacity} tokens; this step would need ${P + S}.`);
	return feeds;
}

/** An empty cache entry for one KV input: past length 0, or a static cache's whole buffer of zeros. */
export function emptyPast(ort: OrtModule, kv: KvPair): Ort.Tensor {
	const dims = kv.dims.map((d, i) => (i === kv.seqAxis ? (kv.capacity ?? 0) : typeof d === 'number' ? d : 1));
	const n = dims.reduce((a, b) => a * b, 1);
	if (kv.dtype === 'float16') return new ort.Tensor('float16', new Uint16Array(n), dims);
	return new ort.Tensor('float32', new Float32Array(n), dims);
}

/**
 * What a decoder graph reads and writes, by role: the token ids, positions, the attention mask, and
 * the KV cache (each past input paired with the present output it flows into, found by structure).
 * `stepFeeds` makes the inputs of one forward step for batch 1, whatever the exporter's names,
 * layouts ([B,H,P,D] or K and V stacked as [2,B,H,P,D]) and integer widths.
 */
import type * as Ort from 'onnxruntime-web';
import { DataType, dataTypeName, type GraphIndex, type ValueInfoProto } from './graph';
import { kvCacheInputs } from './kv-cache';

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
	/** Which dim grows with the sequence. */
	seqAxis: number;
}

export interface DecoderIo {
	inputIds: IoTensor;
	positionIds?: IoTensor;
	attentionMask?: IoTensor;
	/** Other integer inputs filled with zeros (token_type_ids). */
	zeros: IoTensor[];
	kv: KvPair[];
	logits: string;
	logitsDtype?: string;
	/** Longest sequence the graph accepts, where a fixed dim (a 4-D mask or position table) says so. */
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
	for (const name of kvNames) {
		const down = g.descendants(name);
		const present = outputs.find((o) => down.has(o.name!) && (o.type?.tensorType?.shape?.dim?.length ?? 0) >= 4);
		if (!present) throw new Error(`The KV-cache input "${name}" reaches no present output.`);
		const io = ioTensor(g.graphInputs.get(name)!);
		const symbolic = io.dims.map((d, i) => (typeof d === 'string' ? i : -1)).filter((i) => i >= 0);
		// [batch, …, past_len, head_dim]: the growing axis is the last symbolic one.
		const seqAxis = symbolic.length ? symbolic[symbolic.length - 1] : io.dims.length - 2;
		kv.push({ past: name, present: present.name!, dtype: io.dtype, dims: io.dims, seqAxis });
	}
	const rest = [...g.graphInputs.values()].filter((v) => !kvNames.has(v.name!));
	const isInt = (v: ValueInfoProto) => [DataType.INT64, DataType.INT32].includes(v.type?.tensorType?.elemType ?? 0);
	const byName = (re: RegExp) => rest.find((v) => re.test(v.name!));
	const ids = byName(/^input_ids$/) ?? rest.find(isInt);
	if (!ids) throw new Error('The graph has no token-id input.');
	const pos = byName(/position/);
	const mask = byName(/mask/);
	const zeros = rest.filter((v) => v !== ids && v !== pos && v !== mask);
	for (const z of zeros)
		if (!isInt(z)) throw new Error(`Loupe does not know how to fill the graph input "${z.name}".`);
	const logits = outputs.find((o) => !kv.some((p) => p.present === o.name))!;
	const maskIo = mask ? ioTensor(mask) : undefined;
	const fixedMask = maskIo && maskIo.dims.length === 4 && typeof maskIo.dims[3] === 'number' ? (maskIo.dims[3] as number) : undefined;
	return {
		inputIds: ioTensor(ids),
		positionIds: pos ? ioTensor(pos) : undefined,
		attentionMask: maskIo,
		zeros: zeros.map(ioTensor),
		kv,
		logits: logits.name!,
		logitsDtype: ioTensor(logits).dtype,
		maxSeqLen: fixedMask
	};
}

type OrtModule = typeof Ort;

function intTensor(ort: OrtModule, dtype: string, values: number[], dims: number[]): Ort.Tensor {
	if (dtype === 'int64') return new ort.Tensor('int64', BigInt64Array.from(values, BigInt), dims);
	if (dtype === 'int32') return new ort.Tensor('int32', Int32Array.from(values), dims);
	if (dtype === 'float32') return new ort.Tensor('float32', Float32Array.from(values), dims);
	if (dtype === 'float16') return new ort.Tensor('float16', Uint16Array.from(values, (v) => (v ? 0x3c00 : 0)), dims);
	if (dtype === 'bool') return new ort.Tensor('bool', Uint8Array.from(values), dims);
	throw new Error(`Cannot make a ${dtype} input.`);
}

/** Inputs for one step: `tokens` appended after `position` tokens already in the cache (batch 1). */
export function stepFeeds(ort: OrtModule, io: DecoderIo, tokens: number[], position: number): Record<string, Ort.Tensor> {
	const S = tokens.length;
	const P = position;
	const feeds: Record<string, Ort.Tensor> = { [io.inputIds.name]: intTensor(ort, io.inputIds.dtype, tokens, [1, S]) };
	if (io.positionIds)
		feeds[io.positionIds.name] = intTensor(ort, io.positionIds.dtype, tokens.map((_, i) => P + i), [1, S]);
	const m = io.attentionMask;
	if (m && m.dims.length === 2) feeds[m.name] = intTensor(ort, m.dtype, new Array(P + S).fill(1), [1, P + S]);
	else if (m && m.dims.length === 4) {
		// A causal mask the graph slices itself ([1,1,max,max], 1 = may attend), as Megatron's export reads it.
		const n = typeof m.dims[3] === 'number' ? m.dims[3] : P + S;
		const v = new Array(n * n);
		for (let r = 0; r < n; r++) for (let c = 0; c < n; c++) v[r * n + c] = c <= r ? 1 : 0;
		feeds[m.name] = intTensor(ort, m.dtype, v, [1, 1, n, n]);
	} else if (m) throw new Error(`Unknown attention mask layout ${JSON.stringify(m.dims)}.`);
	for (const z of io.zeros) feeds[z.name] = intTensor(ort, z.dtype, new Array(S).fill(0), [1, S]);
	return feeds;
}

/** An empty cache entry (past length 0) for one KV input. */
export function emptyPast(ort: OrtModule, kv: KvPair): Ort.Tensor {
	const dims = kv.dims.map((d, i) => (i === kv.seqAxis ? 0 : typeof d === 'number' ? d : 1));
	if (kv.dtype === 'float16') return new ort.Tensor('float16', new Uint16Array(0), dims);
	return new ort.Tensor('float32', new Float32Array(0), dims);
}

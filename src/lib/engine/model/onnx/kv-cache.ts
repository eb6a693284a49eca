/**
 * The KV cache of a decoder graph: which inputs are the cache, and which present output each past
 * input must be fed from on the next step, proven by structure.
 *
 * A past is paired with its present through what the graph does with it, never through "what it
 * reaches" (a fused attention node reads both the past key and the past value, and the residual
 * carries every layer's cache into every later layer's outputs):
 *
 *   fused attention  the op's own slots (table below): past key ↔ present key, past value ↔ present value
 *   unfused          the Concat that appends this step's keys or values to the past; its output,
 *                    through plain copies and reshapes, is the present (K and V stacked as
 *                    [2,B,H,P,D] pair as one tensor)
 *   static cache     opset-24 TensorScatter writes this step into a fixed-size buffer: input 0 is the
 *                    cache, output 0 the updated cache, input 2 the write position
 *
 * Names (`past_key_values.N.key` ↔ `present.N.key`, `past_N` ↔ `present_N`, …) are only a cross-check:
 * where structure and names disagree, or the structure gives no single present, this refuses with
 * the input and the candidates rather than guess.
 */
import { DataType, type GraphIndex, type NodeProto, type ValueInfoProto } from './graph';

/**
 * KV-cache inputs: floating-point graph inputs of rank 4 or more ([B,H,P,D] or [2,B,H,P,D]) that flow
 * into a graph output of rank 4 or more (their `present`). A 4-D attention mask reaches only the logits.
 */
export function kvCacheInputs(g: GraphIndex): Set<string> {
	const rank = (v: ValueInfoProto) => v.type?.tensorType?.shape?.dim?.length ?? 0;
	const floats = new Set<number>([DataType.FLOAT, DataType.FLOAT16, DataType.BFLOAT16]);
	const cacheOutputs = new Set([...g.graphOutputs.values()].filter((v) => rank(v) >= 4).map((v) => v.name!));
	const out = new Set<string>();
	for (const v of g.graphInputs.values()) {
		if (!floats.has(v.type?.tensorType?.elemType ?? 0) || rank(v) < 4) continue;
		for (const t of g.descendants(v.name!))
			if (cacheOutputs.has(t)) {
				out.add(v.name!);
				break;
			}
	}
	return out;
}

/**
 * Past-input slot → present-output slot of the attention ops that carry a cache, from their schemas:
 * onnxruntime's docs/ContribOperators.md (com.microsoft) and the ONNX operator spec (Attention-23/24).
 */
const ATTENTION_SLOTS: Record<string, Record<number, { out: number; role: KvRole }>> = {
	// input, weights, bias, mask_index, past [2,B,N,P,H] → output, present
	'com.microsoft:Attention': { 4: { out: 1, role: 'stacked' } },
	// query, key, value, bias, key_padding_mask, attention_bias, past_key, past_value → output, present_key, present_value
	'com.microsoft:MultiHeadAttention': { 6: { out: 1, role: 'key' }, 7: { out: 2, role: 'value' } },
	// query, key, value, past_key, past_value, seqlens_k, total_sequence_length, … → output, present_key, present_value
	'com.microsoft:GroupQueryAttention': { 3: { out: 1, role: 'key' }, 4: { out: 2, role: 'value' } },
	// Q, K, V, attn_mask, past_key, past_value, nonpad_kv_seqlen (24) → Y, present_key, present_value, qk_matmul_output
	':Attention': { 4: { out: 1, role: 'key' }, 5: { out: 2, role: 'value' } }
};

export type KvRole = 'key' | 'value' | 'stacked';

export interface KvLink {
	past: string;
	present: string;
	/** How structure proved the pair, e.g. `MultiHeadAttention "/model/layers.0/attn" slot 7 → 2`. */
	via: string;
	/** A fixed-size cache written in place by TensorScatter (its length does not grow). */
	static: boolean;
	/** Where TensorScatter reads the write position from (a graph input), for static caches. */
	writeIndices?: string;
}

export class KvPairingError extends Error {}

const opKey = (n: NodeProto) => `${n.domain === 'ai.onnx' ? '' : (n.domain ?? '')}:${n.opType}`;
/** Ops that copy a tensor or change only its type: the same values under another name. */
const COPIES = new Set(['Identity', 'Cast']);
/** Ops that take a view of the cache without computing on it (the stacked layout splits K from V). */
const VIEWS = new Set([...COPIES, 'Split', 'Gather', 'Slice', 'Squeeze', 'Unsqueeze', 'Reshape', 'Transpose', 'Flatten']);
/** Ops between an appended cache and its graph output (stacking K and V back together included). */
const TO_PRESENT = new Set([...COPIES, 'Unsqueeze', 'Reshape', 'Transpose', 'Concat']);

/** Pairs every KV-cache input with its present output; throws KvPairingError where it cannot prove one. */
export function pairKvCache(g: GraphIndex, pasts: Iterable<string> = kvCacheInputs(g)): KvLink[] {
	const links = [...pasts].map((past) => pairOne(g, past));
	// Two pasts fed from one present is exactly the mistake this file exists to prevent.
	const byPresent = new Map<string, string[]>();
	for (const l of links) byPresent.set(l.present, [...(byPresent.get(l.present) ?? []), l.past]);
	for (const [present, ps] of byPresent)
		if (ps.length > 1)
			throw new KvPairingError(
				`The KV-cache inputs ${ps.map((p) => `"${p}"`).join(' and ')} would all be fed from "${present}": the cache wiring is ambiguous, Loupe will not guess.`
			);
	return links;
}

function pairOne(g: GraphIndex, past: string): KvLink {
	const views = closure(g, [past], VIEWS);
	const found = new Map<string, { via: string; static: boolean; writeIndices?: string }>();
	const readers: string[] = [];
	for (const t of views)
		for (const node of g.consumers.get(t) ?? []) {
			if (VIEWS.has(node.opType!)) continue;
			const label = `${node.opType} "${node.name ?? ''}"`;
			readers.push(label);
			const slot = node.input!.indexOf(t);
			const table = ATTENTION_SLOTS[opKey(node)];
			if (table) {
				const entry = table[slot];
				if (!entry)
					throw new KvPairingError(
						`The KV-cache input "${past}" is read by ${label} at input ${slot}, which is not one of its past slots (${Object.keys(table).join(', ')}): Loupe cannot tell which present it becomes.`
					);
				const out = node.output![entry.out];
				if (!out)
					throw new KvPairingError(
						`${label} reads the KV-cache input "${past}" at input ${slot} but leaves its present output ${entry.out} unnamed: the graph does not return the updated cache.`
					);
				for (const o of outputsThrough(g, out, COPIES))
					found.set(o, { via: `${label} input ${slot} → output ${entry.out}`, static: false });
			} else if (node.opType === 'Concat' && node.input!.some((i) => !views.has(i))) {
				for (const o of outputsThrough(g, node.output![0], TO_PRESENT)) found.set(o, { via: `${label} appends to it`, static: false });
			} else if (node.opType === 'TensorScatter' && slot === 0) {
				const mode = node.attribute?.find((a) => a.name === 'mode');
				if (mode?.s && new TextDecoder().decode(mode.s) !== 'linear')
					throw new KvPairingError(
						`${label} updates the KV cache "${past}" in "${new TextDecoder().decode(mode.s)}" mode (a ring buffer): Loupe feeds linear static caches only. Export with a linear static cache or a dynamic (Concat) cache.`
					);
				const writeIndices = node.input![2] ? inputBehind(g, node.input![2]) : undefined;
				for (const o of outputsThrough(g, node.output![0], COPIES))
					found.set(o, { via: `${label} writes it in place`, static: true, writeIndices });
			}
		}
	if (found.size === 0)
		throw new KvPairingError(
			`The KV-cache input "${past}" reaches no present output through a known attention op's past slot, a Concat that appends to it, or a TensorScatter` +
				(readers.length ? ` (it is read by ${[...new Set(readers)].slice(0, 4).join(', ')})` : '') +
				": Loupe cannot prove its wiring. Pick an export with standard KV-cache ops (torch.onnx, onnxruntime's optimizer or the onnxruntime-genai model builder)."
		);
	if (found.size > 1)
		throw new KvPairingError(
			`The KV-cache input "${past}" is appended into several graph outputs (${[...found.keys()].map((o) => `"${o}"`).join(', ')}): the pairing is ambiguous, Loupe will not guess.`
		);
	const [present, how] = [...found][0];
	const a = nameRole(past);
	const b = nameRole(present);
	const mismatch = (a.layer !== undefined && b.layer !== undefined && a.layer !== b.layer) || (a.role && b.role && a.role !== b.role);
	if (mismatch)
		throw new KvPairingError(
			`By structure the KV-cache input "${past}" becomes "${present}" (${how.via}), but the names say otherwise (${describe(a)} vs ${describe(b)}): the export is inconsistent, Loupe will not guess which to trust.`
		);
	return { past, present, ...how };
}

/** Layer number and key/value role as a name suggests them (the last number, the last key/value word). */
export function nameRole(name: string): { layer?: number; role?: 'key' | 'value' } {
	const words = name
		.toLowerCase()
		.split(/[^a-z0-9]+/)
		.filter(Boolean);
	const numbers = words.filter((w) => /^\d+$/.test(w));
	const roles = words.filter((w) => ['key', 'keys', 'k', 'value', 'values', 'v'].includes(w));
	const last = roles.at(-1);
	return {
		layer: numbers.length ? Number(numbers.at(-1)) : undefined,
		role: last === undefined ? undefined : last.startsWith('k') ? 'key' : 'value'
	};
}

function describe(r: { layer?: number; role?: string }): string {
	return [r.layer !== undefined ? `layer ${r.layer}` : '', r.role ?? ''].filter(Boolean).join(' ') || 'no layer or role';
}

/** Every tensor reachable from `start` through ops in `through`. */
function closure(g: GraphIndex, start: string[], through: Set<string>): Set<string> {
	const out = new Set(start);
	const stack = [...start];
	while (stack.length)
		for (const n of g.consumers.get(stack.pop()!) ?? [])
			if (through.has(n.opType!)) for (const o of n.output!) if (o && !out.has(o)) (out.add(o), stack.push(o));
	return out;
}

function outputsThrough(g: GraphIndex, t: string, through: Set<string>): string[] {
	return [...closure(g, [t], through)].filter((x) => g.graphOutputs.has(x));
}

/** The graph input a tensor is a copy of (through Cast/Identity), if any. */
function inputBehind(g: GraphIndex, t: string): string | undefined {
	for (let x = t; ;) {
		if (g.graphInputs.has(x)) return x;
		const p = g.producer.get(x);
		if (!p || !COPIES.has(p.node.opType!)) return undefined;
		x = p.node.input![0];
	}
}

/**
 * Which graph inputs are the KV cache. Pairing each past with its present lives in decoder-io.ts.
 */
import { DataType, type GraphIndex, type ValueInfoProto } from './graph';

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
		for (const t of g.descendants(v.name!)) if (cacheOutputs.has(t)) { out.add(v.name!); break; }
	}
	return out;
}

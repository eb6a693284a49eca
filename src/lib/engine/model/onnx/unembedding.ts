/**
 * The unembedding W_U of an exported decoder, as [vocab, d_model] fp32, for feature logits
 * (`W_dec[f] · W_U`): the weight of the product that writes the logits (MatMul by [d, V], Gemm with
 * transB by [V, d], or the embedding itself through a Transpose when the two are tied).
 * The final norm's scale is left out (Neuronpedia's logit lens does the same for LayerNorm models).
 */
import type { ExportedDecoder } from './hook-manifest';
import type { TensorProto } from './graph';
import { fromHalf } from './half';

export function findUnembedding(
	d: ExportedDecoder,
	externalData: { path: string; data: Uint8Array }[]
): { classifier: Float32Array; normWeight: null } | null {
	const g = d.graph;
	const { vocabSize: V, dModel: D } = d.trace;
	const writer = g.producer.get(d.io.logits)?.node;
	if (!writer || !(writer.opType === 'MatMul' || writer.opType === 'Gemm')) return null;
	let name = writer.input![1];
	let transposed = writer.opType === 'Gemm' && writer.attribute?.some((a) => a.name === 'transB' && Number(a.i) === 1);
	const t = g.producer.get(name)?.node;
	if (t?.opType === 'Transpose') {
		name = t.input![0];
		transposed = !transposed;
	}
	const init = g.initializers.get(name);
	if (!init) return null;
	const values = readInitializer(init, externalData);
	if (!values || values.length !== V * D) return null;
	if (transposed) return { classifier: values, normWeight: null }; // already [V, D]
	const out = new Float32Array(V * D);
	for (let i = 0; i < D; i++) for (let v = 0; v < V; v++) out[v * D + i] = values[i * V + v];
	return { classifier: out, normWeight: null };
}

function readInitializer(t: TensorProto, externalData: { path: string; data: Uint8Array }[]): Float32Array | null {
	let raw: Uint8Array | undefined;
	if (t.dataLocation === 1) {
		const entry = (k: string) => t.externalData?.find((e) => e.key === k)?.value;
		const file = externalData.find((f) => f.path === entry('location'));
		if (!file) return null;
		const offset = Number(entry('offset') ?? 0);
		const length = Number(entry('length') ?? file.data.byteLength - offset);
		raw = file.data.subarray(offset, offset + length);
	} else if (t.rawData?.length) raw = t.rawData;
	else if (t.floatData?.length) return Float32Array.from(t.floatData);
	if (!raw) return null;
	const copy = raw.slice().buffer;
	if (t.dataType === 1) return new Float32Array(copy);
	if (t.dataType === 10) return Float32Array.from(new Uint16Array(copy), fromHalf);
	return null;
}

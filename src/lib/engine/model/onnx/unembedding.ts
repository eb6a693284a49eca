/**
 * The unembedding W_U of an exported decoder, as [vocab, d_model] fp32, for feature logits
 * (`W_dec[f] · W_U`): the weight of the product that writes the logits (MatMul by [d, V], Gemm with
 * transB by [V, d], or the embedding itself through a Transpose when the two are tied).
 * The final norm's scale is left out (Neuronpedia's logit lens does the same for LayerNorm models).
 *
 * Memory: the head is the largest weight (671 MB for Gemma 3 270M), so it is read without copies
 * where it can be. A [V, d] fp32 weight 4-byte aligned in its file is returned as a view into that
 * file's bytes (no copy; where the file is a WeightFile those bytes are the tensor's range, read
 * now; where it is a whole file, the engine copies W_U out so as not to keep the file alive). A [d, V] head
 * that is the embedding's transposed copy (a tied head as torch exports it) is answered with the
 * embedding, read the same way. Only an untied [d, V] head is transposed, once, into one new array
 * (read in blocks of rows, so an unaligned file costs no second full copy); fp16 heads are
 * converted, once. Unaligned fp32 data is copied once.
 */
import type { ExportedDecoder } from './hook-manifest';
import type { TensorProto } from './graph';
import { fromHalf } from './half';
import { initializerBytes, type ExternalFiles } from './initializer-bytes';

type Files = ExternalFiles;

/**
 * Which initializer is W_U and whether it is stored [V, d] (`transposed`), from the graph's
 * structure alone (nothing is read): null where the logits are not a product with an fp32/fp16
 * initializer of V·d elements.
 */
export function unembeddingWeight(d: ExportedDecoder): { name: string; transposed: boolean } | null {
	const g = d.graph;
	const { vocabSize: V, dModel: D } = d.trace;
	let writer = g.producer.get(d.io.logits)?.node;
	// Through renames and the reshapes around a Gemm (tied-head.ts writes the tied head so).
	while (writer?.opType === 'Identity' || writer?.opType === 'Reshape') writer = g.producer.get(writer.input![0])?.node;
	if (!writer || !(writer.opType === 'MatMul' || writer.opType === 'Gemm')) return null;
	let name = writer.input![1];
	let transposed = !!writer.attribute?.some((a) => a.name === 'transB' && Number(a.i) === 1) && writer.opType === 'Gemm';
	const t = g.producer.get(name)?.node;
	if (t?.opType === 'Transpose') {
		name = t.input![0];
		transposed = !transposed;
	}
	const init = g.initializers.get(name);
	if (!init || !(init.dataType === 1 || init.dataType === 10)) return null;
	if ((init.dims ?? []).map(Number).reduce((a, x) => a * x, 1) !== V * D) return null;
	return { name, transposed };
}

export function findUnembedding(d: ExportedDecoder, externalData: Files): { classifier: Float32Array; normWeight: null } | null {
	const g = d.graph;
	const { vocabSize: V, dModel: D } = d.trace;
	const w = unembeddingWeight(d);
	if (!w) return null;
	const { name, transposed } = w;
	const init = g.initializers.get(name);
	const head = init && rawOf(init, externalData);
	if (!head || head.bytes.byteLength !== V * D * head.width) return null;
	if (transposed) return { classifier: toFloats(head, words(head, 0, V * D)), normWeight: null }; // already [V, D]
	// [D, V]: a tied head's transposed copy is answered with the embedding itself.
	const embInit = name === d.trace.embedding ? undefined : g.initializers.get(d.trace.embedding);
	const emb = embInit && rawOf(embInit, externalData);
	if (emb && emb.width === head.width && emb.bytes.byteLength === head.bytes.byteLength) {
		const e = words(emb, 0, V * D);
		if (isTransposeOf(head, e, V, D)) return { classifier: toFloats(emb, e), normWeight: null };
	}
	return { classifier: transpose(head, D, V), normWeight: null };
}

interface Raw {
	bytes: Uint8Array;
	/** Bytes per element: 4 (fp32) or 2 (fp16). */
	width: 2 | 4;
}

/** The initializer's bytes where they are (inside the graph, or in its external-data file), fp32 or fp16 only. */
function rawOf(t: TensorProto, externalData: Files): Raw | null {
	const width = t.dataType === 1 ? 4 : t.dataType === 10 ? 2 : 0;
	if (!width) return null;
	const bytes = initializerBytes(t, externalData);
	return bytes ? { bytes, width } : null;
}

/** Elements [start, start + count) as words: a view where aligned, else a copy of just those. */
function words(r: Raw, start: number, count: number): Uint32Array | Uint16Array {
	let bytes = r.bytes.subarray(start * r.width, (start + count) * r.width);
	// A copy, aligned (not `slice`: on a Node Buffer, which protobufjs gives in Node, that is a view).
	if (bytes.byteOffset % r.width) bytes = new Uint8Array(bytes);
	return r.width === 4 ? new Uint32Array(bytes.buffer, bytes.byteOffset, count) : new Uint16Array(bytes.buffer, bytes.byteOffset, count);
}

/** fp32 words as floats over the same memory; fp16 converted. */
function toFloats(r: Raw, w: Uint32Array | Uint16Array): Float32Array {
	if (r.width === 4) return new Float32Array(w.buffer, w.byteOffset, w.length);
	return Float32Array.from(w as Uint16Array, fromHalf);
}

const ROWS = 16;

/** Whether the [D, V] head is exactly the transpose of the [V, D] embedding words `e` (bit for bit). */
function isTransposeOf(head: Raw, e: Uint32Array | Uint16Array, V: number, D: number): boolean {
	for (let i0 = 0; i0 < D; i0 += ROWS) {
		const k = Math.min(ROWS, D - i0);
		const block = words(head, i0 * V, k * V);
		for (let r = 0; r < k; r++) {
			const i = i0 + r;
			for (let v = 0; v < V; v++) if (block[r * V + v] !== e[v * D + i]) return false;
		}
	}
	return true;
}

/** [D, V] → [V, D] fp32, in blocks of rows (one new array, however the source is aligned). */
function transpose(head: Raw, D: number, V: number): Float32Array {
	const out = new Float32Array(V * D);
	for (let i0 = 0; i0 < D; i0 += ROWS) {
		const k = Math.min(ROWS, D - i0);
		const block = toFloats(head, words(head, i0 * V, k * V));
		for (let r = 0; r < k; r++) {
			const i = i0 + r;
			for (let v = 0; v < V; v++) out[v * D + i] = block[r * V + v];
		}
	}
	return out;
}

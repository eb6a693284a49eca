/**
 * How many parameters an exported graph has, each counted once. Exporters often store a tied LM
 * head twice: the embedding [V, d] for the Gather and its transpose [d, V] for the final MatMul
 * (torch.onnx writes GPT-2's and Gemma's that way), so summing initializers says 163M for GPT-2
 * small. An initializer whose values are the embedding's, as they are or transposed, is a copy.
 */
import type { GraphIndex, TensorProto } from './onnx/graph';
import { initializerBytes, initializerRange, type ExternalFiles } from './onnx/initializer-bytes';
import { WeightFile } from './onnx/weight-file';

/** Elements compared per candidate copy: spread over the whole matrix, enough that an untied head never passes. */
const SAMPLES = 4096;

export function distinctParameterCount(g: GraphIndex, embedding: string, externalData: ExternalFiles): number {
	const emb = g.initializers.get(embedding);
	const dims = (t: TensorProto) => (t.dims ?? []).map(Number);
	const size = (t: TensorProto) => dims(t).reduce((a, d) => a * d, 1);
	let n = 0;
	for (const t of g.initializers.values()) if (dims(t).length >= 1) n += size(t);
	const e = emb && dims(emb).length === 2 ? words(emb, externalData) : null;
	if (!emb || !e) return n;
	const [V, D] = dims(emb);
	for (const [name, t] of g.initializers) {
		if (name === embedding || t.dataType !== emb.dataType || size(t) !== V * D) continue;
		const c = words(t, externalData);
		const shape = dims(t);
		if (!c) continue;
		const transposed = shape.length === 2 && shape[0] === D && shape[1] === V;
		if (sameValues(e, c, V, D, transposed)) n -= V * D;
	}
	return n;
}

/** Element `(v, i)` of the embedding against the candidate's `(v, i)`, or `(i, v)` when transposed. */
function sameValues(e: Words, c: Words, V: number, D: number, transposed: boolean): boolean {
	if (e.length !== c.length) return false;
	const step = Math.max(1, Math.floor(e.length / SAMPLES));
	for (let j = 0; j < e.length; j += step) {
		const v = Math.floor(j / D);
		const i = j % D;
		if (e.at(j) !== c.at(transposed ? i * V + v : j)) return false;
	}
	return true;
}

/** An initializer's elements as raw words (fp32 → 32-bit, fp16/bf16 → 16-bit). */
interface Words {
	length: number;
	at(j: number): number;
}

/**
 * Reads elements in place through a DataView, aligned or not: only SAMPLES of them are looked at, so
 * copying an unaligned matrix to read them (640 MB for a Gemma-3-270M embedding) would be waste.
 * Null for other types or unreadable data.
 */
function words(t: TensorProto, externalData: ExternalFiles): Words | null {
	const width = t.dataType === 1 ? 4 : t.dataType === 10 || t.dataType === 16 ? 2 : 0;
	if (!width) return null;
	// A file read on demand: each sample read alone (8 KiB of reads, not the whole matrix).
	const range = initializerRange(t, externalData);
	if (range?.file instanceof WeightFile) {
		const { file, offset, length } = range;
		if (length % width) return null;
		const at = (j: number) => {
			const b = file.subarray(offset + j * width, offset + (j + 1) * width);
			return width === 4 ? b[0] | (b[1] << 8) | (b[2] << 16) | (b[3] << 24) : b[0] | (b[1] << 8);
		};
		return { length: length / width, at: (j) => at(j) >>> 0 };
	}
	const raw = initializerBytes(t, externalData);
	if (!raw || raw.byteLength % width) return null;
	const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
	return {
		length: raw.byteLength / width,
		at: width === 4 ? (j) => view.getUint32(j * 4, true) : (j) => view.getUint16(j * 2, true)
	};
}

/**
 * An initializer's bytes where they are, without a copy: inside the graph (`rawData`, a view into
 * the graph file's bytes) or in the external-data file it names (a view into that file), by the
 * `location`, `offset` and `length` the graph gives. Readers of weights (the unembedding, the
 * parameter count) take their elements from here, so none of them copies a matrix to look at it.
 * Where the file is a WeightFile (read on demand, onnx/weight-file.ts), `initializerBytes` reads
 * the tensor's range now, and `initializerRange` says where it is without reading it.
 */
import type { TensorProto } from './graph';

export type ExternalFiles = { path: string; data: Uint8Array }[];

/** The bytes, or null where the external file is not given or there is no data; a float32 tensor's `floatData` comes back as its bytes. */
export function initializerBytes(t: TensorProto, externalData: ExternalFiles): Uint8Array | null {
	if (t.dataLocation === 1) {
		const r = initializerRange(t, externalData);
		return r && r.file.subarray(r.offset, r.offset + r.length);
	}
	if (t.rawData?.length) return t.rawData;
	// float_data holds float32 tensors only (ONNX's TensorProto); other types never keep their values there.
	if (t.dataType === 1 && t.floatData?.length) return new Uint8Array(Float32Array.from(t.floatData).buffer);
	return null;
}

/** Where an external initializer's bytes are (its file's bytes, offset, length), read or not; null for inline ones or a file not given. */
export function initializerRange(t: TensorProto, externalData: ExternalFiles): { file: Uint8Array; offset: number; length: number } | null {
	if (t.dataLocation !== 1) return null;
	const entry = (k: string) => t.externalData?.find((e) => e.key === k)?.value;
	const file = externalData.find((f) => f.path === entry('location'));
	if (!file) return null;
	const offset = Number(entry('offset') ?? 0);
	return { file: file.data, offset, length: Number(entry('length') ?? file.data.byteLength - offset) };
}

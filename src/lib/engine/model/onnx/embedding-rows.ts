/**
 * The rows of the token embedding that one step needs, read from where the matrix lives, for the
 * `loupe_embeds` input of segments that no longer hold the matrix (embedding-outside.ts).
 *
 * The reader lives as long as the runner. Where the weights file is a WeightFile (a Blob in the
 * worker, a file on disk in Node: onnx/weight-file.ts) it keeps that handle, not bytes, and reads
 * d_model × 4 bytes per token; where the file is whole in memory (a page's main thread, tests), it
 * copies the matrix's range out, since a view would keep the whole file alive: that costs what
 * onnxruntime no longer holds.
 */
import type * as Ort from 'onnxruntime-web';
import { WeightFile } from './weight-file';
import type { EmbeddingInput } from './embedding-outside';

type OrtModule = typeof Ort;
type Files = { path: string; data: Uint8Array }[];

export class EmbeddingRows {
	private readonly rowBytes: number;

	private constructor(
		readonly spec: EmbeddingInput,
		private readonly read: (start: number, end: number) => Uint8Array
	) {
		this.rowBytes = spec.dModel * (spec.dtype === 'float16' ? 2 : 4);
	}

	/** The reader for `spec`, from the inline bytes or the file among `files` that the graph names. */
	static open(spec: EmbeddingInput, files: Files | undefined): EmbeddingRows {
		const size = spec.vocab * spec.dModel * (spec.dtype === 'float16' ? 2 : 4);
		if (spec.inline) return new EmbeddingRows(spec, (s, e) => spec.inline!.subarray(s, e));
		const file = files?.find((f) => f.path === spec.location)?.data;
		if (!file)
			throw new Error(
				`The token embedding "${spec.weight}" is in "${spec.location}", which was not handed to the runner with the model's other weights files.`
			);
		if (spec.offset + size > file.byteLength)
			throw new Error(
				`The token embedding "${spec.weight}" ends at byte ${spec.offset + size} of "${spec.location}", which has ${file.byteLength}: the file is truncated.`
			);
		if (file instanceof WeightFile) return new EmbeddingRows(spec, (s, e) => file.subarray(spec.offset + s, spec.offset + e));
		const matrix = file.slice(spec.offset, spec.offset + size);
		return new EmbeddingRows(spec, (s, e) => matrix.subarray(s, e));
	}

	/** [batch, sequence, d_model] rows for `ids` (the step's token-id tensor, [batch, sequence]). */
	tensor(ort: OrtModule, ids: Ort.Tensor): Ort.Tensor {
		const { vocab, dModel, dtype } = this.spec;
		if (ids.dims.length !== 2) throw new Error(`The token ids are ${ids.dims.length}-D; [batch, sequence] was expected.`);
		const values = ids.data as BigInt64Array | Int32Array;
		const n = values.length;
		const bytes = new Uint8Array(n * this.rowBytes);
		for (let i = 0; i < n; i++) {
			const id = Number(values[i]);
			if (!Number.isInteger(id) || id < 0 || id >= vocab)
				throw new Error(`Token id ${id} is outside the model's vocabulary (0 to ${vocab - 1}).`);
			bytes.set(this.read(id * this.rowBytes, (id + 1) * this.rowBytes), i * this.rowBytes);
		}
		const dims = [ids.dims[0], ids.dims[1], dModel];
		return dtype === 'float16'
			? new ort.Tensor('float16', new Uint16Array(bytes.buffer), dims)
			: new ort.Tensor('float32', new Float32Array(bytes.buffer), dims);
	}
}

/**
 * A weights file read on demand: a Uint8Array that holds none of the file's bytes, whose
 * `byteLength` is the file's and whose `subarray(start, end)` reads just that range from where the
 * file lives (a Blob: the File the user picked, or a Cache API entry; a file on disk in Node).
 *
 * Why: onnxruntime-web copies each external tensor out of the buffer it is given by
 * `subarray(offset, offset + length)` and `byteLength` alone (its external-data loader, 1.30), into
 * its heap (wasm) or a GPU buffer (WebGPU). Handed a whole ArrayBuffer, the worker holds the model
 * twice while sessions are built (that buffer and onnxruntime's copy); handed this, it holds one
 * tensor at a time, and nothing once the sessions exist. Loupe's own readers of weights (the
 * unembedding, the parameter count, the extent check) go through the same two members.
 *
 * A read that fails (a picked file moved or changed since) is kept in `failure`, because
 * onnxruntime turns any throw inside its loader into a bare status code: the engine reads it back to
 * say which file and why.
 */

export type ReadRange = (start: number, end: number) => Uint8Array;

export class WeightFile extends Uint8Array {
	/** The last read that threw, for the engine's message (onnxruntime swallows the throw). */
	failure: unknown = null;

	constructor(
		readonly name: string,
		size: number,
		private readRange: ReadRange
	) {
		super(0);
		// An own property over the prototype's getter: every reader sees the file's length.
		Object.defineProperty(this, 'byteLength', { value: size });
		Object.defineProperty(this, 'length', { value: size });
	}

	/** Bytes [start, end) of the file, read now into a fresh array (offsets as TypedArray.subarray takes them). */
	override subarray(start = 0, end?: number): Uint8Array<ArrayBuffer> {
		const n = this.byteLength;
		const clamp = (x: number) => Math.min(n, Math.max(0, x < 0 ? n + x : x));
		const s = clamp(Math.trunc(start));
		const e = Math.max(s, clamp(end === undefined ? n : Math.trunc(end)));
		try {
			const out = this.readRange(s, e);
			if (out.byteLength !== e - s) throw new Error(`read ${out.byteLength} bytes where ${e - s} were asked for`);
			return out as Uint8Array<ArrayBuffer>;
		} catch (err) {
			this.failure = err;
			throw err;
		}
	}
}

/** Workers have it; a page's main thread does not (nor TypeScript's DOM library, hence the cast). */
const FileReaderSyncHere = () => (globalThis as { FileReaderSync?: new () => { readAsArrayBuffer(b: Blob): ArrayBuffer } }).FileReaderSync;

/** Whether synchronous reads of a Blob's slices are possible here (workers: yes; a page's main thread: no). */
export const canReadBlobsInPlace = () => !!FileReaderSyncHere();

/**
 * A Blob (a picked File, a Cache API body) as a WeightFile, read slice by slice with FileReaderSync;
 * where that does not exist (a page's main thread), the whole Blob read into memory once.
 */
export async function blobWeights(blob: Blob, name: string): Promise<Uint8Array> {
	const Sync = FileReaderSyncHere();
	if (!Sync) return new Uint8Array(await blob.arrayBuffer());
	const reader = new Sync();
	return new WeightFile(name, blob.size, (s, e) => new Uint8Array(reader.readAsArrayBuffer(blob.slice(s, e))));
}

/** The failure of any WeightFile among `files`, with its file's name (for a message), or null. */
export function weightReadFailure(files: { data: Uint8Array }[] | undefined): { name: string; error: unknown } | null {
	for (const f of files ?? []) if (f.data instanceof WeightFile && f.data.failure) return { name: f.data.name, error: f.data.failure };
	return null;
}

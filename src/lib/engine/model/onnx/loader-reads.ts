/**
 * The weights files as onnxruntime's external-data loader reads them while a session is built:
 * each on-demand read (a WeightFile's `subarray`) is freed as soon as the loader has copied it,
 * instead of whenever the garbage collector next runs.
 *
 * Why: a WeightFile hands out one fresh ArrayBuffer per tensor (FileReaderSync allocates one a
 * read), and onnxruntime copies it into its heap (wasm: `HEAPU8.set`) or a GPU buffer (WebGPU: a
 * mapped staging buffer, filled at the call) before it asks for the next tensor. Left to the
 * collector, the renderer held most of a model's worth of those copied-out reads at once: Gemma 3
 * 270M's 1 GB of weights peaked at 1.3–1.7× the weights while loading and 1.9–2.3× while re-cut
 * (`node tests/bench/worker-memory.mjs --model gemma3`); with each read dropped, 1.09–1.15× both.
 *
 * How a buffer is dropped: posted, transferred, to a port whose other end is closed. The transfer
 * detaches it and the message, and the bytes with it, are discarded at once. (`transfer(0)` is no
 * use: it moves the bytes into a new buffer, which waits for the collector like the old one.)
 *
 * Only buffers a read made for itself are dropped (a whole ArrayBuffer, nothing else viewing it:
 * not a slice of an in-memory file); one that cannot be transferred is left to the collector.
 * Loupe's own readers (the unembedding, the embedding rows) use the WeightFiles themselves, never these.
 */
import { WeightFile, canReadBlobsInPlace } from './weight-file';

type Files = { path: string; data: Uint8Array }[];

let sink: MessagePort | null = null;

/** Frees `a`'s bytes now, when it is the only view of a buffer a read made for it. */
function dropRead(a: Uint8Array) {
	const b = a.buffer;
	if (!(b instanceof ArrayBuffer) || a.byteOffset !== 0 || a.byteLength !== b.byteLength || !a.byteLength) return;
	if (!sink) {
		const ch = new MessageChannel();
		ch.port2.close();
		sink = ch.port1;
		(sink as MessagePort & { unref?: () => void }).unref?.(); // Node: never what keeps the process alive
	}
	try {
		sink.postMessage(null, [b]);
	} catch {
		// not transferable here: the collector frees it, as before
	}
}

export interface LoaderReads {
	/** The files to hand onnxruntime (WeightFiles wrapped; anything else as it was). */
	files: Files | undefined;
	/** Frees the last read: call once the session exists (or failed). */
	done(): void;
}

/**
 * `files` for onnxruntime's loader, each read freed when the next one comes (and at `done`).
 * `drop`: where reads are Blob slices (a browser's worker: FileReaderSync), the only place this is
 * measured to help. Not in Node: there a buffer posted to a closed port is kept, not dropped (the
 * real-size bench's ArrayBuffers grew by a model's worth a cut, 0.5 → 1.7 GB), and its file reads are
 * left to the collector as before.
 */
export function loaderReads(files: Files | undefined, drop = canReadBlobsInPlace()): LoaderReads {
	if (!drop || typeof MessageChannel !== 'function' || !files?.some((f) => f.data instanceof WeightFile)) return { files, done: () => {} };
	let last: Uint8Array | null = null;
	const release = () => {
		if (last) dropRead(last);
		last = null;
	};
	// A failed read is kept by `w` itself (its `failure`), where the engine looks for it.
	const wrap = (w: WeightFile) =>
		new WeightFile(w.name, w.byteLength, (s, e) => {
			release(); // the loader has copied the previous tensor out before it asks for this one
			return (last = w.subarray(s, e));
		});
	return { files: files.map((f) => (f.data instanceof WeightFile ? { ...f, data: wrap(f.data) } : f)), done: release };
}

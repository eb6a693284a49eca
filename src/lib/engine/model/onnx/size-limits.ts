/**
 * What a page can hold, checked before a model's weights are downloaded or allocated: a model that
 * cannot fit is refused with its sizes and what to pick instead, not left to fail deep inside
 * onnxruntime with `std::bad_alloc` (or a tab killed for memory) after minutes of downloading.
 *
 * The limits:
 *  - one file: onnxruntime-web is a 32-bit WebAssembly build; it reads external data from a mounted
 *    buffer by 32-bit offsets, and its heap is at most 4 GiB, so no single file (graph or sidecar)
 *    beyond 4 GiB can be read. Browsers also refuse ArrayBuffers that large on some systems
 *    (onnxruntime-web itself falls back to a WebAssembly.Memory when `new ArrayBuffer` throws).
 *  - on the CPU (wasm EP): every weight lives in that one heap of at most 4 GiB (65536 pages of
 *    64 KiB, less one), beside the activations, the KV cache and the logits, so the weights may take
 *    at most `WASM_WEIGHT_BUDGET`. On WebGPU the weights go to GPU buffers; only the per-file limit
 *    applies there (the adapter's own limits are onnxruntime's to report).
 */
import { LoupeError } from '../../errors';
import { externalDataExtents } from './external-data-extent';
import type { GraphIndex } from './graph';

const GiB = 1024 ** 3;
/** The largest file onnxruntime-web can read weights from (32-bit offsets). */
export const MAX_FILE_BYTES = 4 * GiB - 1;
/** onnxruntime-web's wasm heap: 65535 pages of 64 KiB. */
export const WASM_HEAP_BYTES = 65535 * 65536;
/** Weights the wasm heap can hold and still run: the heap less room for activations, cache and logits. */
export const WASM_WEIGHT_BUDGET = WASM_HEAP_BYTES - 512 * 1024 ** 2;

export interface WeightBytes {
	/** Bytes of weights stored inside the graph file. */
	inline: number;
	/** Bytes each external-data file must hold (its last initializer's end), by the path the graph names. */
	files: Map<string, number>;
	/** Every weight, inline and external. */
	total: number;
}

/** How many bytes of weights a graph holds and needs from each sidecar file, from the graph alone (nothing is read). */
export function weightBytes(g: GraphIndex): WeightBytes {
	let inline = 0;
	for (const t of g.initializers.values()) if (t.dataLocation !== 1) inline += t.rawData?.byteLength ?? 0;
	const files = new Map([...externalDataExtents(g)].map(([path, { end }]) => [path, end]));
	return { inline, files, total: inline + [...files.values()].reduce((a, b) => a + b, 0) };
}

const size = (n: number) => (n >= GiB ? `${(n / GiB).toFixed(2)} GiB` : `${Math.round(n / 1024 ** 2)} MiB`);

const PICK_INSTEAD = 'Pick a smaller model, or a quantized variant of this one (int8 is about a quarter of fp32, q4 about an eighth).';

/**
 * Throws a LoupeError with the sizes when a graph of `graphBytes` bytes whose weights are `w`
 * cannot be opened here: a file beyond what onnxruntime-web can read, or (backend 'wasm') more
 * weights than its heap can hold. Cheap: call it before fetching the sidecar files.
 */
export function refuseWhatCannotFit(graphName: string, graphBytes: number, w: WeightBytes, backend?: 'webgpu' | 'wasm') {
	const files: [string, number][] = [[graphName, graphBytes], ...w.files];
	for (const [path, bytes] of files)
		if (bytes > MAX_FILE_BYTES)
			throw new LoupeError(
				'too-large',
				`${path} is ${size(bytes)} (${bytes} bytes), but onnxruntime-web reads a model's files with 32-bit offsets, so one file can be at most ${size(MAX_FILE_BYTES + 1)}: ${graphName} cannot run in a browser.`,
				PICK_INSTEAD
			);
	if (backend === 'wasm' && w.total > WASM_WEIGHT_BUDGET)
		throw new LoupeError(
			'too-large',
			`${graphName} has ${size(w.total)} of weights (${w.total} bytes), but on the CPU (WebAssembly) onnxruntime keeps every weight in one heap of at most ${size(WASM_HEAP_BYTES)}, of which ${size(WASM_WEIGHT_BUDGET)} can hold weights (the rest is for activations, the KV cache and logits).`,
			`${PICK_INSTEAD} On a GPU with WebGPU the weights need not fit in that heap.`
		);
}

/**
 * The same checks for downloads whose sizes the Hub's file list gives, before any byte is fetched:
 * each file against onnxruntime-web's 32-bit offsets, and (backend 'wasm') all of them together
 * against the weights the wasm heap can hold (the files are the weights, give or take the graph).
 */
export function refuseDownloadThatCannotFit(path: string, bytes: number, backend?: 'webgpu' | 'wasm', allBytes = bytes) {
	if (bytes > MAX_FILE_BYTES)
		throw new LoupeError(
			'too-large',
			`${path} is ${size(bytes)} (${bytes} bytes), but onnxruntime-web reads a model's files with 32-bit offsets, so one file can be at most ${size(MAX_FILE_BYTES + 1)}. Nothing was downloaded.`,
			PICK_INSTEAD
		);
	if (backend === 'wasm' && allBytes > WASM_WEIGHT_BUDGET)
		throw new LoupeError(
			'too-large',
			`${path} and its weights files are ${size(allBytes)} (${allBytes} bytes), but on the CPU (WebAssembly) onnxruntime keeps every weight in one heap of at most ${size(WASM_HEAP_BYTES)}, of which ${size(WASM_WEIGHT_BUDGET)} can hold weights. Nothing was downloaded.`,
			`${PICK_INSTEAD} On a GPU with WebGPU the weights need not fit in that heap.`
		);
}

/**
 * Runs a segmented decoder in onnxruntime-web: one InferenceSession per segment, chained through
 * the residual stream, with the KV cache kept where the execution provider put it (on the GPU for
 * WebGPU: `preferredOutputLocation: 'gpu-buffer'`, fed back as the next step's past).
 *
 * The same runner serves the graphs Loupe builds (llama2.c) and exported graphs cut by surgery:
 * `model.io` says which inputs are token ids, positions, mask and cache; each segment reads what it
 * names from the step's pool (inputs, then earlier segments' outputs).
 *
 * Between two segments `onResidual` sees the residual tensor at the hook (on the GPU for WebGPU),
 * which is where later features read and edit the residual stream.
 *
 * Several sequences of the same length can run as one batch (`reset(batch)`, `forwardRows`): the
 * side-by-side comparison writes the default and the steered completion together. Graphs whose
 * cache or mask is not per sequence (static caches, 4-D masks) are not `batchable`.
 */
import type * as Ort from 'onnxruntime-web';
import type { SegmentedModel } from './segments';
import { emptyPast, stepFeeds } from './onnx/decoder-io';
import { webgpuProvider } from './gpu-device';
import { EmbeddingRows } from './onnx/embedding-rows';
import { withColumnFiles } from './onnx/column-file';
import { loaderReads } from './onnx/loader-reads';

export type Backend = 'webgpu' | 'wasm';
type OrtModule = typeof Ort;

export interface ForwardResult {
	/** Logits for every new position: [batch, rows, vocab]; on the GPU for WebGPU. Dispose when done. */
	logits: Ort.Tensor;
	/** New positions per sequence. */
	rows: number;
	/** Sequences in the batch (1 unless `reset(batch)` said more). */
	batch: number;
}

/** `rows`: every row of the residual tensor, batch × new positions ([batch, positions, d] in memory). */
export type ResidualHook = (hook: string, residual: Ort.Tensor, rows: number) => void | Promise<void>;

export class SegmentRunner {
	private past = new Map<string, Ort.Tensor>();
	/** Tokens already in the KV cache. */
	position = 0;
	/** Logits stay on the GPU (fp32 logits on WebGPU), where the sampling kernel reads them. */
	readonly logitsOnGpu: boolean;
	/** Sequences per forward (`reset(batch)`). */
	batch = 1;

	private constructor(
		private ort: OrtModule,
		readonly model: SegmentedModel,
		private sessions: Ort.InferenceSession[],
		readonly backend: Backend,
		/** The token embedding's rows, where a segment takes them as an input (read here for its whole life). */
		private embeddingRows: EmbeddingRows | null = null
	) {
		this.logitsOnGpu = backend === 'webgpu' && logitsAreF32(model);
		this.reset();
	}

	static async create(ort: OrtModule, model: SegmentedModel, backend: Backend): Promise<SegmentRunner> {
		// Opened before the sessions, from the same files: it keeps a handle on the embedding's file
		// (a Blob, a file on disk) after `model.externalData` is dropped.
		const spec = model.segments.find((s) => s.embedding)?.embedding;
		const rows = spec ? EmbeddingRows.open(spec, model.externalData) : null;
		const sessions: Ort.InferenceSession[] = [];
		try {
			// On WebGPU every session runs on Loupe's own device (gpu-device.ts says why).
			const provider = backend === 'webgpu' ? await webgpuProvider() : backend;
			for (const seg of model.segments) {
				const reads = loaderReads(withColumnFiles(model.externalData, seg.columnFiles ?? []));
				const options: Ort.InferenceSession.SessionOptions = {
					executionProviders: [provider],
					graphOptimizationLevel: 'all',
					externalData: reads.files
				};
				if (backend === 'webgpu')
					options.preferredOutputLocation = Object.fromEntries(
						seg.outputNames.filter((n) => n !== model.io.logits || logitsAreF32(model)).map((n) => [n, 'gpu-buffer' as const])
					);
				try {
					sessions.push(await ort.InferenceSession.create(seg.bytes, options));
				} finally {
					reads.done();
				}
			}
		} catch (e) {
			for (const s of sessions) await s.release();
			throw e;
		}
		return new SegmentRunner(ort, model, sessions, backend, rows);
	}

	/**
	 * The graph takes a batch of sequences: a dynamic batch axis on every cache, a [batch, total] mask
	 * (or none), and no inputs shared by the whole batch (a static cache's write index, its lengths).
	 */
	get batchable(): boolean {
		const { io } = this.model;
		return (
			(!io.attentionMask || io.attentionMask.dims.length === 2) &&
			!io.writeIndices &&
			!io.kvSeqLen &&
			io.kv.every((kv) => !kv.capacity && typeof kv.dims[0] !== 'number')
		);
	}

	/** Empties the KV cache (new sequences start at position 0); `batch` sequences from now on. */
	reset(batch = 1) {
		if (batch !== 1 && !this.batchable) throw new Error('this graph runs one sequence at a time (its cache or mask is not per sequence)');
		for (const t of this.past.values()) t.dispose();
		this.past.clear();
		this.batch = batch;
		for (const kv of this.model.io.kv) {
			const one = emptyPast(this.ort, kv); // no elements yet: only the batch axis changes
			this.past.set(kv.past, batch === 1 ? one : new this.ort.Tensor(one.type, one.data, [batch, ...one.dims.slice(1)]));
		}
		this.position = 0;
	}

	/** Appends `tokens` at the current position and returns their logits (one sequence). */
	forward(tokens: number[], onResidual?: ResidualHook): Promise<ForwardResult> {
		return this.forwardRows([tokens], onResidual);
	}

	/** Appends one row of tokens per sequence of the batch (all the same length) at the current position. */
	async forwardRows(batchTokens: number[][], onResidual?: ResidualHook): Promise<ForwardResult> {
		const { io } = this.model;
		const B = batchTokens.length;
		const tokens = batchTokens[0];
		if (B !== this.batch) throw new Error(`the cache holds ${this.batch} sequences; ${B} were given (reset first)`);
		if (batchTokens.some((r) => r.length !== tokens.length)) throw new Error('every sequence of a batch takes the same number of tokens');
		const S = tokens.length;
		const P = this.position;
		if (P + S > this.model.shape.maxSeqLen) throw new Error(`the context is full: ${P + S} tokens > ${this.model.shape.maxSeqLen}`);
		const feeds = stepFeeds(this.ort, io, tokens, P);
		if (B > 1) batchFeeds(this.ort, feeds, io.inputIds.name, batchTokens);
		const rows = this.embeddingRows;
		if (rows) feeds[rows.spec.input] = rows.tensor(this.ort, feeds[io.inputIds.name]);
		const pool: Record<string, Ort.Tensor> = { ...feeds, ...Object.fromEntries(this.past) };
		const made: Ort.Tensor[] = []; // this step's outputs, disposed at the end unless kept
		try {
			for (const [i, seg] of this.model.segments.entries()) {
				const out = await this.sessions[i].run(Object.fromEntries(seg.inputNames.map((n) => [n, pool[n]])));
				Object.assign(pool, out);
				made.push(...Object.values(out));
				if (seg.residualOut) await onResidual?.(seg.residualOut, out[seg.residualOut], B * S);
			}
		} catch (e) {
			for (const t of made) t.dispose();
			throw e;
		}
		for (const kv of io.kv) {
			this.past.get(kv.past)!.dispose();
			this.past.set(kv.past, pool[kv.present]);
		}
		const keep = new Set<Ort.Tensor>([pool[io.logits], ...this.past.values()]);
		for (const t of made) if (!keep.has(t)) t.dispose();
		this.position += S;
		return { logits: pool[io.logits], rows: S, batch: B };
	}

	async dispose() {
		for (const t of this.past.values()) t.dispose();
		this.past.clear();
		for (const s of this.sessions) await s.release();
		this.sessions = [];
		this.embeddingRows = null;
	}
}

/**
 * One sequence's feeds made a batch's: the token ids row by row, everything else (positions, mask,
 * zeros: the same for every sequence, which all sit at the same position) repeated along axis 0.
 */
function batchFeeds(ort: OrtModule, feeds: Record<string, Ort.Tensor>, idsName: string, batchTokens: number[][]) {
	const B = batchTokens.length;
	for (const [name, t] of Object.entries(feeds)) {
		if (t.dims[0] !== 1) throw new Error(`input ${name} is not per sequence (dims ${t.dims.join('×')})`);
		const src = t.data as BigInt64Array | Int32Array;
		const out = new (src.constructor as { new (n: number): BigInt64Array | Int32Array })(src.length * B);
		for (let b = 0; b < B; b++)
			if (name === idsName)
				batchTokens[b].forEach((id, i) => (out[b * src.length + i] = (src instanceof BigInt64Array ? BigInt(id) : id) as never));
			else out.set(src as never, b * src.length);
		t.dispose();
		feeds[name] = new ort.Tensor(t.type as 'int64', out as BigInt64Array, [B, ...t.dims.slice(1)]);
	}
}

/** fp16 logits come back to the CPU (the sampling kernel reads fp32). */
function logitsAreF32(model: SegmentedModel) {
	return (model.io.logitsDtype ?? 'float32') === 'float32';
}

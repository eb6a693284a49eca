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
 */
import type * as Ort from 'onnxruntime-web';
import type { SegmentedModel } from './segments';
import { emptyPast, stepFeeds } from './onnx/decoder-io';

export type Backend = 'webgpu' | 'wasm';
type OrtModule = typeof Ort;

export interface ForwardResult {
	/** Logits for every new position: [1, rows, vocab]; on the GPU for WebGPU. Dispose when done. */
	logits: Ort.Tensor;
	rows: number;
}

export type ResidualHook = (hook: string, residual: Ort.Tensor, rows: number) => void | Promise<void>;

export class SegmentRunner {
	private past = new Map<string, Ort.Tensor>();
	/** Tokens already in the KV cache. */
	position = 0;
	/** Logits stay on the GPU (fp32 logits on WebGPU), where the sampling kernel reads them. */
	readonly logitsOnGpu: boolean;

	private constructor(
		private ort: OrtModule,
		readonly model: SegmentedModel,
		private sessions: Ort.InferenceSession[],
		readonly backend: Backend
	) {
		this.logitsOnGpu = backend === 'webgpu' && logitsAreF32(model);
		this.reset();
	}

	static async create(ort: OrtModule, model: SegmentedModel, backend: Backend): Promise<SegmentRunner> {
		const sessions: Ort.InferenceSession[] = [];
		try {
			for (const seg of model.segments) {
				const options: Ort.InferenceSession.SessionOptions = {
					executionProviders: [backend],
					graphOptimizationLevel: 'all',
					externalData: model.externalData
				};
				if (backend === 'webgpu')
					options.preferredOutputLocation = Object.fromEntries(
						seg.outputNames.filter((n) => n !== model.io.logits || logitsAreF32(model)).map((n) => [n, 'gpu-buffer' as const])
					);
				sessions.push(await ort.InferenceSession.create(seg.bytes, options));
			}
		} catch (e) {
			for (const s of sessions) await s.release();
			throw e;
		}
		return new SegmentRunner(ort, model, sessions, backend);
	}

	/** Empties the KV cache (a new sequence starts at position 0). */
	reset() {
		for (const t of this.past.values()) t.dispose();
		this.past.clear();
		for (const kv of this.model.io.kv) this.past.set(kv.past, emptyPast(this.ort, kv));
		this.position = 0;
	}

	/** Appends `tokens` at the current position and returns their logits. */
	async forward(tokens: number[], onResidual?: ResidualHook): Promise<ForwardResult> {
		const { io } = this.model;
		const S = tokens.length;
		const P = this.position;
		if (P + S > this.model.shape.maxSeqLen) throw new Error(`the context is full: ${P + S} tokens > ${this.model.shape.maxSeqLen}`);
		const pool: Record<string, Ort.Tensor> = { ...stepFeeds(this.ort, io, tokens, P), ...Object.fromEntries(this.past) };
		const made: Ort.Tensor[] = []; // this step's outputs, disposed at the end unless kept
		try {
			for (const [i, seg] of this.model.segments.entries()) {
				const out = await this.sessions[i].run(Object.fromEntries(seg.inputNames.map((n) => [n, pool[n]])));
				Object.assign(pool, out);
				made.push(...Object.values(out));
				if (seg.residualOut) await onResidual?.(seg.residualOut, out[seg.residualOut], S);
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
		return { logits: pool[io.logits], rows: S };
	}

	async dispose() {
		for (const t of this.past.values()) t.dispose();
		this.past.clear();
		for (const s of this.sessions) await s.release();
		this.sessions = [];
	}
}

/** fp16 logits come back to the CPU (the sampling kernel reads fp32). */
function logitsAreF32(model: SegmentedModel) {
	return (model.io.logitsDtype ?? 'float32') === 'float32';
}

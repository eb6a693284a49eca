/**
 * Runs a segmented decoder in onnxruntime-web: one InferenceSession per segment, chained through
 * the residual stream, with the KV cache kept where the execution provider put it (on the GPU for
 * WebGPU: `preferredOutputLocation: 'gpu-buffer'`, fed back as the next step's past).
 *
 * Between two segments `onResidual` sees the residual tensor at the hook (on the GPU for WebGPU),
 * which is where later features read and edit the residual stream.
 */
import type * as Ort from 'onnxruntime-web';
import { pastKeyName, pastValueName, presentKeyName, presentValueName, type SegmentedModel } from './segments';

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

	private constructor(
		private ort: OrtModule,
		readonly model: SegmentedModel,
		private sessions: Ort.InferenceSession[],
		readonly backend: Backend
	) {
		this.reset();
	}

	static async create(ort: OrtModule, model: SegmentedModel, backend: Backend): Promise<SegmentRunner> {
		const sessions: Ort.InferenceSession[] = [];
		for (const seg of model.segments) {
			const options: Ort.InferenceSession.SessionOptions = {
				executionProviders: [backend],
				graphOptimizationLevel: 'all'
			};
			if (backend === 'webgpu')
				options.preferredOutputLocation = Object.fromEntries(seg.outputNames.map((n) => [n, 'gpu-buffer' as const]));
			sessions.push(await ort.InferenceSession.create(seg.bytes, options));
		}
		return new SegmentRunner(ort, model, sessions, backend);
	}

	/** Empties the KV cache (a new sequence starts at position 0). */
	reset() {
		for (const t of this.past.values()) t.dispose();
		this.past.clear();
		const { nLayers, nKvHeads, headDim } = this.model.shape;
		for (let l = 0; l < nLayers; l++)
			for (const name of [pastKeyName(l), pastValueName(l)])
				this.past.set(name, new this.ort.Tensor('float32', new Float32Array(0), [1, nKvHeads, 0, headDim]));
		this.position = 0;
	}

	/** Appends `tokens` at the current position and returns their logits. */
	async forward(tokens: number[], onResidual?: ResidualHook): Promise<ForwardResult> {
		const { ort } = this;
		const S = tokens.length;
		const P = this.position;
		if (P + S > this.model.shape.maxSeqLen)
			throw new Error(`the context is full: ${P + S} tokens > ${this.model.shape.maxSeqLen}`);
		const positions = new ort.Tensor('int64', BigInt64Array.from(tokens, (_, i) => BigInt(P + i)), [1, S]);
		const mask = new ort.Tensor('int64', new BigInt64Array(P + S).fill(1n), [1, P + S]);
		let carry: Record<string, Ort.Tensor> = {
			input_ids: new ort.Tensor('int64', BigInt64Array.from(tokens, BigInt), [1, S])
		};
		let logits: Ort.Tensor | undefined;
		for (const [i, seg] of this.model.segments.entries()) {
			const feeds: Record<string, Ort.Tensor> = { ...carry, position_ids: positions, attention_mask: mask };
			for (let l = seg.layers[0]; l < seg.layers[1]; l++) {
				feeds[pastKeyName(l)] = this.past.get(pastKeyName(l))!;
				feeds[pastValueName(l)] = this.past.get(pastValueName(l))!;
			}
			const out = await this.sessions[i].run(feeds);
			if (i > 0) for (const t of Object.values(carry)) t.dispose(); // the residual that came in
			for (let l = seg.layers[0]; l < seg.layers[1]; l++) {
				for (const [past, present] of [[pastKeyName(l), presentKeyName(l)], [pastValueName(l), presentValueName(l)]]) {
					this.past.get(past)!.dispose();
					this.past.set(past, out[present]);
				}
			}
			if (seg.residualOut) {
				await onResidual?.(seg.residualOut, out[seg.residualOut], S);
				carry = { [seg.residualOut]: out[seg.residualOut] };
			} else logits = out.logits;
		}
		this.position += S;
		return { logits: logits!, rows: S };
	}

	async dispose() {
		for (const t of this.past.values()) t.dispose();
		this.past.clear();
		for (const s of this.sessions) await s.release();
		this.sessions = [];
	}
}

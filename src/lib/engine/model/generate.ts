/**
 * The generation loop: prefill the prompt in one forward, then one token per step with the KV
 * cache, post-processing logits on the GPU (or with the TS reference on the wasm fallback),
 * sampling with a seeded PRNG, and streaming decoded text as it comes.
 */
import type { ResidualHook, SegmentRunner } from './runner';
import type { LogitsProcessor, ProcessedLogits } from '../gpu/logits-process';
import { logitsProcessReference } from '../gpu/logits-process';
import { sampleToken, type SamplingSettings } from '../sample/sampler';
import { seededRandom } from '../sample/prng';
import type * as Ort from 'onnxruntime-web';
import { fromHalf } from './onnx/half';

/** The last position's logits from a CPU tensor, as fp32 (fp16 exports give Uint16 halves). */
export function lastRowLogits(logits: Ort.Tensor, rows: number, V: number): Float32Array {
	if (logits.type === 'float16') return Float32Array.from((logits.data as Uint16Array).subarray((rows - 1) * V, rows * V), fromHalf);
	return (logits.data as Float32Array).subarray((rows - 1) * V, rows * V);
}

export interface TextTokenizer {
	encode(text: string): number[]; // with BOS
	streamDecoder(): { push(token: number): string; reset(last: number): void };
	readonly stopTokens: number[];
}

export interface TokenEvent {
	token: number;
	text: string; // the decoded text this token adds
	index: number; // 0-based among generated tokens
	tokensPerSecond: number;
}

export type StopReason = 'max_tokens' | 'end_of_text' | 'context_full' | 'stopped';

export interface GenerateResult {
	text: string;
	tokens: number[];
	promptTokens: number;
	stopReason: StopReason;
	tokensPerSecond: number; // generated tokens after the first, per second of decoding
	firstTokenMs: number; // prefill + first sample
}

export async function generate(
	runner: SegmentRunner,
	tokenizer: TextTokenizer,
	processor: LogitsProcessor | null,
	prompt: string,
	s: SamplingSettings,
	onToken: (e: TokenEvent) => void,
	shouldStop: () => boolean,
	/** Sees (and may edit) the residual between segments at every step: steering lives here. */
	onResidual?: ResidualHook
): Promise<GenerateResult> {
	const V = runner.model.shape.vocabSize;
	const promptIds = tokenizer.encode(prompt);
	const counts = new Uint32Array(V);
	const random = seededRandom(s.seed);
	const decoder = tokenizer.streamDecoder();
	decoder.reset(promptIds[promptIds.length - 1]);
	const room = runner.model.shape.maxSeqLen - promptIds.length;
	if (room <= 0) throw new Error(`The prompt is ${promptIds.length} tokens; this model's context holds ${runner.model.shape.maxSeqLen}.`);

	runner.reset();
	const t0 = performance.now();
	let firstTokenMs = 0;
	let tDecode = t0;
	const tokens: number[] = [];
	let text = '';
	let stopReason: StopReason = 'max_tokens';
	let input = promptIds;
	for (;;) {
		if (shouldStop()) {
			stopReason = 'stopped';
			break;
		}
		if (tokens.length >= s.maxTokens) break;
		if (tokens.length >= room) {
			stopReason = 'context_full';
			break;
		}
		const { logits, rows } = await runner.forward(input, onResidual);
		let processed: ProcessedLogits;
		try {
			const p = { temperature: s.temperature, freqPenalty: s.freqPenalty };
			if (processor && logits.location === 'gpu-buffer') processed = await processor.run(logits.gpuBuffer as GPUBuffer, rows, rows - 1, counts, p);
			else processed = logitsProcessReference(lastRowLogits(logits, rows, V), counts, p);
		} finally {
			logits.dispose();
		}
		const next = sampleToken(processed, s, random);
		if (tokenizer.stopTokens.includes(next)) {
			stopReason = 'end_of_text';
			break;
		}
		tokens.push(next);
		counts[next]++;
		const piece = decoder.push(next);
		text += piece;
		const now = performance.now();
		if (tokens.length === 1) {
			firstTokenMs = now - t0;
			tDecode = now;
		}
		const tps = tokens.length > 1 ? ((tokens.length - 1) * 1000) / (now - tDecode) : 0;
		onToken({ token: next, text: piece, index: tokens.length - 1, tokensPerSecond: tps });
		input = [next];
	}
	const elapsed = performance.now() - tDecode;
	return {
		text,
		tokens,
		promptTokens: promptIds.length,
		stopReason,
		tokensPerSecond: tokens.length > 1 ? ((tokens.length - 1) * 1000) / elapsed : 0,
		firstTokenMs
	};
}

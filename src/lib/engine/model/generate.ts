/**
 * The generation loop: prefill the prompt in one forward, then one token per step with the KV
 * cache, post-processing logits on the GPU (or with the TS reference on the wasm fallback),
 * sampling with a seeded PRNG, and streaming decoded text as it comes.
 *
 * `generateIds` is the loop on token ids (what `npm run generate` runs in Node); `generate` puts
 * the tokenizer around it (what the app runs), so both sample through the same code.
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

export interface IdsResult {
	tokens: number[];
	stopReason: StopReason;
	tokensPerSecond: number; // generated tokens after the first, per second of decoding
	firstTokenMs: number; // prefill + first sample
}

export interface GenerateResult extends IdsResult {
	text: string;
	promptTokens: number;
}

export interface IdsOptions {
	/** Tokens that end the text (not emitted). */
	stopTokens?: number[];
	onToken?: (token: number, index: number, tokensPerSecond: number) => void;
	shouldStop?: () => boolean;
	/** Sees (and may edit) the residual between segments at every step: steering lives here. */
	onResidual?: ResidualHook;
}

/** Generates up to `s.maxTokens` tokens after `promptIds`, from an empty cache. */
export async function generateIds(
	runner: SegmentRunner,
	processor: LogitsProcessor | null,
	promptIds: number[],
	s: SamplingSettings,
	o: IdsOptions = {}
): Promise<IdsResult> {
	const V = runner.model.shape.vocabSize;
	if (!promptIds.length) throw new Error('The prompt has no tokens: give at least one token id (usually BOS).');
	const room = runner.model.shape.maxSeqLen - promptIds.length;
	if (room <= 0) throw new Error(`The prompt is ${promptIds.length} tokens; this model's context holds ${runner.model.shape.maxSeqLen}.`);
	const counts = new Uint32Array(V);
	const random = seededRandom(s.seed);
	const stop = o.stopTokens ?? [];

	runner.reset();
	const t0 = performance.now();
	let firstTokenMs = 0;
	let tDecode = t0;
	const tokens: number[] = [];
	let stopReason: StopReason = 'max_tokens';
	let input = promptIds;
	for (;;) {
		if (o.shouldStop?.()) {
			stopReason = 'stopped';
			break;
		}
		if (tokens.length >= s.maxTokens) break;
		if (tokens.length >= room) {
			stopReason = 'context_full';
			break;
		}
		const { logits, rows } = await runner.forward(input, o.onResidual);
		let processed: ProcessedLogits;
		try {
			const p = { temperature: s.temperature, freqPenalty: s.freqPenalty };
			if (processor && logits.location === 'gpu-buffer')
				processed = await processor.run(logits.gpuBuffer as GPUBuffer, rows, rows - 1, counts, p);
			else processed = logitsProcessReference(lastRowLogits(logits, rows, V), counts, p);
		} finally {
			logits.dispose();
		}
		const next = sampleToken(processed, s, random);
		if (stop.includes(next)) {
			stopReason = 'end_of_text';
			break;
		}
		tokens.push(next);
		counts[next]++;
		const now = performance.now();
		if (tokens.length === 1) {
			firstTokenMs = now - t0;
			tDecode = now;
		}
		o.onToken?.(next, tokens.length - 1, tokens.length > 1 ? ((tokens.length - 1) * 1000) / (now - tDecode) : 0);
		input = [next];
	}
	const elapsed = performance.now() - tDecode;
	return { tokens, stopReason, tokensPerSecond: tokens.length > 1 ? ((tokens.length - 1) * 1000) / elapsed : 0, firstTokenMs };
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
	const promptIds = tokenizer.encode(prompt);
	const decoder = tokenizer.streamDecoder();
	decoder.reset(promptIds[promptIds.length - 1]);
	let text = '';
	const r = await generateIds(runner, processor, promptIds, s, {
		stopTokens: tokenizer.stopTokens,
		shouldStop,
		onResidual,
		onToken: (token, index, tokensPerSecond) => {
			const piece = decoder.push(token);
			text += piece;
			onToken({ token, text: piece, index, tokensPerSecond });
		}
	});
	return { ...r, text, promptTokens: promptIds.length };
}

export interface BatchOptions extends Omit<IdsOptions, 'onToken'> {
	/** `row`: which sequence of the batch the token belongs to. */
	onToken?: (row: number, token: number, index: number, tokensPerSecond: number) => void;
}

/**
 * `batch` completions of the same prompt with the same settings, as one batch of sequences (one
 * forward per step for all of them): each row samples with its own seeded PRNG and counts, as
 * `generateIds` would alone, so row b's tokens are those of a run on its own (`onResidual` sees the
 * whole batch and may treat rows differently: side by side steers row 1 only). A row that has
 * ended keeps being fed its last token, unread, until every row has.
 */
export async function generateIdsBatch(
	runner: SegmentRunner,
	processor: LogitsProcessor | null,
	promptIds: number[],
	s: SamplingSettings,
	batch: number,
	o: BatchOptions = {}
): Promise<IdsResult[]> {
	const V = runner.model.shape.vocabSize;
	if (!promptIds.length) throw new Error('The prompt has no tokens: give at least one token id (usually BOS).');
	const room = runner.model.shape.maxSeqLen - promptIds.length;
	if (room <= 0) throw new Error(`The prompt is ${promptIds.length} tokens; this model's context holds ${runner.model.shape.maxSeqLen}.`);
	const stop = o.stopTokens ?? [];
	const rows = Array.from({ length: batch }, () => ({
		counts: new Uint32Array(V),
		random: seededRandom(s.seed),
		tokens: [] as number[],
		stopReason: null as StopReason | null,
		firstTokenMs: 0,
		tDecode: 0,
		tEnd: 0
	}));
	runner.reset(batch);
	const t0 = performance.now();
	let input = rows.map(() => promptIds);
	const live = () => rows.filter((r) => !r.stopReason);
	while (live().length) {
		const now0 = performance.now();
		for (const r of live()) {
			if (o.shouldStop?.()) r.stopReason = 'stopped';
			else if (r.tokens.length >= s.maxTokens) r.stopReason = 'max_tokens';
			else if (r.tokens.length >= room) r.stopReason = 'context_full';
			if (r.stopReason) r.tEnd = now0;
		}
		if (!live().length) break;
		const { logits, rows: S } = await runner.forwardRows(input, o.onResidual);
		let processed: (ProcessedLogits | null)[];
		try {
			const p = { temperature: s.temperature, freqPenalty: s.freqPenalty };
			const last = (b: number) => b * S + S - 1; // sequence b's last new position among all rows
			if (processor && logits.location === 'gpu-buffer') {
				// Every row of the batch in one dispatch and one read-back (ended rows are processed, unread).
				const all = await processor.runRows(
					logits.gpuBuffer as GPUBuffer,
					batch * S,
					last(0),
					S,
					rows.map((r) => r.counts),
					p
				);
				processed = all.map((pr, b) => (rows[b].stopReason ? null : pr));
			} else
				processed = rows.map((r, b) => (r.stopReason ? null : logitsProcessReference(lastRowLogits(logits, last(b) + 1, V), r.counts, p)));
		} finally {
			logits.dispose();
		}
		const now = performance.now();
		input = rows.map((r, b) => {
			const pr = processed[b];
			if (r.stopReason || !pr) return [r.tokens.at(-1) ?? promptIds.at(-1)!];
			const next = sampleToken(pr, s, r.random);
			if (stop.includes(next)) {
				r.stopReason = 'end_of_text';
				r.tEnd = now;
				return [next];
			}
			r.tokens.push(next);
			r.counts[next]++;
			if (r.tokens.length === 1) {
				r.firstTokenMs = now - t0;
				r.tDecode = now;
			}
			o.onToken?.(b, next, r.tokens.length - 1, r.tokens.length > 1 ? ((r.tokens.length - 1) * 1000) / (now - r.tDecode) : 0);
			return [next];
		});
	}
	return rows.map((r) => ({
		tokens: r.tokens,
		stopReason: r.stopReason!,
		tokensPerSecond: r.tokens.length > 1 ? ((r.tokens.length - 1) * 1000) / ((r.tEnd || performance.now()) - r.tDecode) : 0,
		firstTokenMs: r.firstTokenMs
	}));
}

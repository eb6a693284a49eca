/**
 * Errors the UI can show as they are: `message` says what happened, `action` says what to do.
 * Every failure that reaches a person goes through one of these codes.
 */
export type LoupeErrorCode =
	| 'hub-unreachable'
	| 'not-found'
	| 'http'
	| 'truncated'
	| 'not-a-checkpoint'
	| 'unsupported-checkpoint'
	/** A model larger than this page can hold (a file past onnxruntime-web's 32-bit offsets, weights past the wasm heap). */
	| 'too-large'
	| 'not-a-tokenizer'
	| 'tokenizer-mismatch'
	| 'storage-full'
	| 'gpu-lost'
	| 'no-webgpu'
	| 'model-failed'
	| 'not-an-sae'
	| 'sae-mismatch'
	/** A file read as an attribution graph that is not one (Neuronpedia's graph JSON). */
	| 'not-a-graph'
	/** Another tab holds the training lock (Web Locks): one run trains at a time. */
	| 'training-busy'
	| 'aborted';

export class LoupeError extends Error {
	constructor(
		readonly code: LoupeErrorCode,
		message: string,
		readonly action: string
	) {
		super(message);
		this.name = 'LoupeError';
	}
}

/** What crosses the worker boundary: plain data, never an Error instance. */
export interface ErrorInfo {
	code: LoupeErrorCode;
	message: string;
	action: string;
}

export function toErrorInfo(e: unknown): ErrorInfo {
	if (e instanceof LoupeError) return { code: e.code, message: e.message, action: e.action };
	if (e instanceof DOMException && e.name === 'AbortError') return { code: 'aborted', message: 'Stopped.', action: '' };
	const message = e instanceof Error ? e.message : String(e);
	return {
		code: 'model-failed',
		message: `The model failed: ${message}`,
		action: 'Reload the page; if it happens again, pick another model or report the message above.'
	};
}

/** What every engine call returns across the worker boundary: the value, or the error for people. */
export type Result<T> = { ok: true; value: T } | { ok: false; error: ErrorInfo };

/** Runs `f`, turning a throw into `{ ok: false, error }` (so the UI never sees an Error instance). */
export async function attempt<T>(f: () => Promise<T>): Promise<Result<T>> {
	try {
		return { ok: true, value: await f() };
	} catch (e) {
		return { ok: false, error: toErrorInfo(e) };
	}
}

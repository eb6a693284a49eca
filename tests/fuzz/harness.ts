/**
 * The fuzz harness: runs one parser on one hostile input and says what happened, keeps the tally a
 * parser's suite prints (cases tried, accepted, refused with a message, crashes), and decides what
 * counts as a crash:
 *  - any throw that is not Loupe's own error (a TypeError or RangeError from deep inside, a string);
 *  - a refusal whose message is the JS engine's, not Loupe's ("Cannot read properties of …",
 *    "… is not a function", "[object Object]", a NaN where a size should be), or is empty;
 *  - a case that takes longer than its bound (a parser that loops on a count the file made up);
 *  - an allocation larger than the parser's budget for an input of that size, i.e. a buffer sized
 *    by a header before the header was checked against the file's real length. The guard swaps
 *    the global typed-array and ArrayBuffer constructors for the call, so the parser's own
 *    `new Float32Array(n)` with a made-up n is refused by the guard before any memory is taken.
 */
import fc from 'fast-check';
import { LoupeError } from '../../src/lib/engine/errors';

/** Cases per parser: a bounded number in CI, `LOUPE_FUZZ_RUNS` for the long run (`npm run fuzz`). */
export function fuzzRuns(ciDefault: number): number {
	const n = Number(process.env.LOUPE_FUZZ_RUNS);
	return Number.isInteger(n) && n > 0 ? n : ciDefault;
}

/**
 * fast-check's settings for a parser's property: the run count and the seed. CI's bounded run uses
 * a fixed seed, so a red CI is a bug found, never a draw; the long run (`npm run fuzz`) draws a new
 * seed each time to explore; `LOUPE_FUZZ_SEED` replays either.
 */
export const CI_FUZZ_SEED = 20261201;
export function fcParams(ciDefault: number): fc.Parameters<unknown> {
	const given = Number(process.env.LOUPE_FUZZ_SEED);
	const long = Number.isInteger(Number(process.env.LOUPE_FUZZ_RUNS)) && Number(process.env.LOUPE_FUZZ_RUNS) > 0;
	const seed = process.env.LOUPE_FUZZ_SEED && Number.isInteger(given) ? given : long ? undefined : CI_FUZZ_SEED;
	return { numRuns: fuzzRuns(ciDefault), ...(seed !== undefined ? { seed } : {}), endOnFailure: true };
}

/** Messages that are the JS engine speaking, not Loupe: a refusal that reads like this is a crash. */
const ENGINE_TEXT = [
	/Cannot read propert/,
	/Cannot set propert/,
	/Cannot destructure/,
	/is not a function/,
	/is not iterable/,
	/is not defined/,
	/is not a constructor/,
	/Cannot convert/,
	/Invalid (typed )?array length/,
	/Array buffer allocation failed/,
	/Invalid DataView length/,
	/Offset is outside the bounds/,
	/Start offset .* is outside/,
	/out of range|out of bounds/i,
	/Maximum call stack/,
	/\[object Object\]/,
	/(?<!")\bNaN\b(?!")/ // a size computed from garbage (a quoted "NaN" is the file's own text)
];

/** What a parser may throw: Loupe's error (message and action) or, where `plainError` is allowed, an Error of class Error. */
export interface RefusalRule {
	/** Internal layers (decodeModel, GraphIndex) throw plain `Error`s that their callers wrap; allow those. */
	plainError?: boolean;
	/**
	 * Where Loupe hands a file to a library that checks little (the tokenizers library), its refusal
	 * names the file and quotes the library after this marker; the library's own words after it are
	 * not held against Loupe.
	 */
	libraryMarker?: string;
}

export type Outcome = { kind: 'accepted' } | { kind: 'refused'; message: string } | { kind: 'crash'; why: string };

class AllocationRefused extends Error {}

const GUARDED = [
	'ArrayBuffer',
	'Uint8Array',
	'Int8Array',
	'Uint16Array',
	'Int16Array',
	'Uint32Array',
	'Int32Array',
	'Float32Array',
	'Float64Array',
	'BigInt64Array'
] as const;

/** Runs `f` with every global buffer constructor refusing allocations over `budget` bytes. */
function withAllocationBudget<T>(budget: number, f: () => T): T {
	const saved = GUARDED.map((k) => [k, globalThis[k]] as const);
	for (const [k, ctor] of saved) {
		const per = k === 'ArrayBuffer' ? 1 : (ctor as unknown as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT;
		(globalThis as Record<string, unknown>)[k] = new Proxy(ctor, {
			construct(target, args, newTarget) {
				if (typeof args[0] === 'number' && args[0] * per > budget)
					throw new AllocationRefused(`new ${k}(${args[0]}): ${args[0] * per} bytes, over the budget of ${budget} for this input`);
				return Reflect.construct(target, args, newTarget);
			}
		});
	}
	try {
		return f();
	} finally {
		for (const [k, ctor] of saved) (globalThis as Record<string, unknown>)[k] = ctor;
	}
}

export interface CaseOptions extends RefusalRule {
	/** The most bytes the parser may allocate at once for this input (default: 8× its size + 1 MiB). */
	budget?: number;
	/** Wall-clock bound of one case, ms. */
	timeoutMs?: number;
}

export function classifyThrow(e: unknown, rule: RefusalRule = {}): Outcome {
	if (e instanceof AllocationRefused) return { kind: 'crash', why: `allocation before the size was checked: ${e.message}` };
	const isLoupe = e instanceof LoupeError;
	const isPlain = rule.plainError && e instanceof Error && e.constructor === Error;
	if (!isLoupe && !isPlain)
		return {
			kind: 'crash',
			why: `uncaught ${e instanceof Error ? e.constructor.name : typeof e}: ${e instanceof Error ? e.message : String(e)}`
		};
	const message = (e as Error).message;
	if (!message || message.length < 12) return { kind: 'crash', why: `refusal without a message: "${message}"` };
	const own = rule.libraryMarker && message.includes(rule.libraryMarker) ? message.slice(0, message.indexOf(rule.libraryMarker)) : message;
	const engine = ENGINE_TEXT.find((r) => r.test(own));
	if (engine) return { kind: 'crash', why: `refusal in the JS engine's words (${engine}): ${message}` };
	if (isLoupe && !(e as LoupeError).action) return { kind: 'crash', why: `refusal without an action: ${message}` };
	return { kind: 'refused', message };
}

/** One sync case: what happened, within the time bound and the allocation budget. */
export function runCase(inputBytes: number, f: () => unknown, o: CaseOptions = {}): Outcome {
	const budget = o.budget ?? 8 * inputBytes + (1 << 20);
	const t0 = performance.now();
	let out: Outcome;
	try {
		withAllocationBudget(budget, f);
		out = { kind: 'accepted' };
	} catch (e) {
		out = classifyThrow(e, o);
	}
	const ms = performance.now() - t0;
	if (ms > (o.timeoutMs ?? 2000)) return { kind: 'crash', why: `took ${ms.toFixed(0)} ms (bound ${o.timeoutMs ?? 2000} ms)` };
	return out;
}

/** One async case (openExportGraph): no allocation guard across awaits, the time bound still holds. */
export async function runCaseAsync(f: () => Promise<unknown>, o: CaseOptions = {}): Promise<Outcome> {
	const t0 = performance.now();
	let out: Outcome;
	try {
		await f();
		out = { kind: 'accepted' };
	} catch (e) {
		out = classifyThrow(e, o);
	}
	const ms = performance.now() - t0;
	if (ms > (o.timeoutMs ?? 2000)) return { kind: 'crash', why: `took ${ms.toFixed(0)} ms (bound ${o.timeoutMs ?? 2000} ms)` };
	return out;
}

/** Counts per parser, printed once its suite is done. */
export class Tally {
	tried = 0;
	accepted = 0;
	refused = 0;
	crashes: string[] = [];
	constructor(readonly parser: string) {}

	/** Records an outcome; true unless it crashed (so it can be a fast-check predicate's result). */
	record(o: Outcome): boolean {
		this.tried++;
		if (o.kind === 'accepted') this.accepted++;
		else if (o.kind === 'refused') this.refused++;
		else this.crashes.push(o.why);
		return o.kind !== 'crash';
	}

	line(): string {
		return `fuzz ${this.parser}: ${this.tried} cases tried, ${this.accepted} accepted, ${this.refused} refused with a message, ${this.crashes.length} crashes`;
	}
}

/** Asserts a property over `arb` with the parser's tally; a crash fails with its reason and (shrunk) input. */
export function fuzz<T>(tally: Tally, arb: fc.Arbitrary<T>, check: (input: T) => Outcome, ciRuns: number) {
	fc.assert(
		fc.property(arb, (input) => {
			const o = check(input);
			if (!tally.record(o)) throw new Error((o as { why: string }).why);
		}),
		fcParams(ciRuns)
	);
}

export async function fuzzAsync<T>(tally: Tally, arb: fc.Arbitrary<T>, check: (input: T) => Promise<Outcome>, ciRuns: number) {
	await fc.assert(
		fc.asyncProperty(arb, async (input) => {
			const o = await check(input);
			if (!tally.record(o)) throw new Error((o as { why: string }).why);
		}),
		fcParams(ciRuns)
	);
}

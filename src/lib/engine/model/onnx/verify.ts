/**
 * Checks graph surgery and the KV-cache wiring in onnxruntime (any backend; the CLI and the unit
 * tests use the wasm one in Node):
 *
 *  1. cache vs no cache: cached step-by-step logits (prompt of length 1, a longer prompt, and that
 *     prompt fed in two chunks) against ONE uncached forward of the unmodified graph over the whole
 *     sequence (empty past: no cache to wire), for the original graph and for the segmented one.
 *     This is the independent check: it fails where the past/present pairing is wrong, which the
 *     comparisons below cannot see (they feed both sides through the same wiring);
 *  2. logits: the original model vs the segmented one (cut at every boundary), same token sequences,
 *     several steps with the KV cache carried from step to step;
 *  3. residuals: what the segmented model hands across each cut vs the same tensor read from the
 *     unmodified graph by adding it as a plain graph output (or, where the export left a fused
 *     sum unnamed, the sum of the fused op's operands, added up here);
 *  4. editing: a vector v added between segments at a hook gives the same logits as the unmodified
 *     graph with an Add node inserted at that tensor, and the next layer reads exactly resid + v.
 *
 * Memory: each phase opens its sessions, records what later phases compare against as plain
 * arrays, and releases them before the next phase, so at most one copy of the weights (the whole
 * graph, or one chain of segments) lives in the wasm heap at a time (it is capped at 4 GiB).
 * A failure is thrown as a VerifyError naming the phase.
 */
import type * as Ort from 'onnxruntime-web';
import { GraphIndex, decodeModel, encodeModel, type ModelProto } from './graph';
import { cutExportedDecoder, openExportedDecoder, type ExportedDecoder } from './hook-manifest';
import { unfuseAtCuts, type CutSegment } from './cut-segments';
import { EmbeddingRows } from './embedding-rows';
import { withColumnFiles } from './column-file';
import { describeDecoderIo, emptyPast, stepFeeds, type DecoderIo } from './decoder-io';
import { boundaryName } from '../hooks';
import { seededRandom } from '../../sample/prng';
import { fromHalf, toHalf } from './half';

type OrtModule = typeof Ort;
type Run = (feeds: Record<string, Ort.Tensor>) => Promise<Record<string, Ort.Tensor>>;
/** Opens a session; `externalData` in place of the phase's (segments that read column files: column-file.ts). */
type Open = (bytes: Uint8Array, externalData?: VerifyOptions['externalData']) => Promise<Ort.InferenceSession>;

export interface VerifyOptions {
	/** External data files by the path the graph names (e.g. `model.onnx.data`). */
	externalData?: { path: string; data: Uint8Array }[];
	sequences?: number;
	promptLength?: number;
	steps?: number;
	seed?: number;
	/** Called as each phase starts (the CLI reports progress with it). */
	onPhase?: (step: string) => void;
}

export interface CacheCheck {
	/** Max |cached − uncached| over every position of every schedule, the unmodified graph cached. */
	original: number;
	/** The same with the segmented graph (cut at every hook) cached, against the unmodified graph's uncached forward. */
	segmented: number;
	/** The chunk lengths fed, e.g. "5+1+1+1" (prompt of 5, then one token at a time). */
	schedules: string[];
	/**
	 * Schedules the graph itself refused to run, with onnxruntime's reason: some exports take several
	 * tokens in one step only from an empty cache (the model builder's mask subgraph), so a chunked
	 * prefill fails inside the graph. Only a chunked prefill may be refused; any other failure fails.
	 */
	refused: { schedule: string; reason: string }[];
}

export interface VerifyReport {
	sequences: number;
	steps: number;
	cachedVsUncached: CacheCheck;
	maxAbsLogitDiff: number;
	/** Max |segmented − original| of the residual at each boundary's canonical hook name. */
	maxAbsResidualDiff: Record<string, number>;
	steering: { hook: string; maxAbsLogitDiff: number; maxAbsInputDiff: number; logitChange: number } | null;
	cutAtOne: { hook: string; maxAbsLogitDiff: number };
}

/** A verification phase failed: `step` says which, `message` why. */
export class VerifyError extends Error {
	constructor(
		readonly step: string,
		readonly reason: string
	) {
		super(`verify failed at "${step}": ${reason}`);
	}
}

const reasonOf = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** Runs `fn` with a session opener whose sessions are all released when it ends, errors tagged with `step`. */
async function phase<T>(
	ort: OrtModule,
	options: Ort.InferenceSession.SessionOptions,
	step: string,
	o: VerifyOptions,
	fn: (open: Open) => Promise<T>
): Promise<T> {
	o.onPhase?.(step);
	const sessions: Ort.InferenceSession[] = [];
	const open: Open = async (bytes, externalData) => {
		const s = await ort.InferenceSession.create(bytes, externalData ? { ...options, externalData } : options);
		sessions.push(s);
		return s;
	};
	try {
		return await fn(open);
	} catch (e) {
		throw e instanceof VerifyError ? e : new VerifyError(step, reasonOf(e));
	} finally {
		for (const s of sessions) await s.release().catch(() => {});
	}
}

function sessionOptions(o: VerifyOptions): Ort.InferenceSession.SessionOptions {
	return { executionProviders: ['wasm'], externalData: o.externalData };
}

function randomSequences(o: VerifyOptions, vocab: number, maxSeqLen = Infinity) {
	const random = seededRandom(o.seed ?? 1);
	const nSeq = o.sequences ?? 3;
	const steps = Math.max(1, Math.min(o.steps ?? 3, maxSeqLen - (o.promptLength ?? 5)));
	const promptLength = Math.min(o.promptLength ?? 5, maxSeqLen - steps);
	const sequences = Array.from({ length: nSeq }, () => Array.from({ length: promptLength + steps }, () => Math.floor(random() * vocab)));
	return { random, sequences, promptLength, steps };
}

/**
 * The chunk lengths the cache check feeds a sequence of n tokens: a prompt of 1, a prompt of
 * `promptLength`, and that prompt in two chunks, each then one token at a time.
 */
export function cacheSchedules(n: number, promptLength: number): number[][] {
	const ones = (k: number) => new Array<number>(k).fill(1);
	const out = [ones(n)];
	if (promptLength > 1) {
		out.push([promptLength, ...ones(n - promptLength)]);
		const first = Math.ceil(promptLength / 2);
		out.push([first, promptLength - first, ...ones(n - promptLength)]);
	}
	return out;
}

export async function verifySurgery(ort: OrtModule, graphBytes: Uint8Array, o: VerifyOptions = {}): Promise<VerifyReport> {
	let d: ExportedDecoder;
	try {
		d = openExportedDecoder(graphBytes);
	} catch (e) {
		throw new VerifyError('open the graph', reasonOf(e));
	}
	const { trace, io } = d;
	const options = sessionOptions(o);
	const { random, sequences, promptLength, steps } = randomSequences(o, trace.vocabSize, io.maxSeqLen);
	const n = promptLength + steps;
	const stepwise = [promptLength, ...new Array<number>(steps).fill(1)];
	const schedules = cacheSchedules(n, promptLength);
	const everyBoundary = trace.boundaries.map((_, b) => b);
	const refused: CacheCheck['refused'] = [];

	// Phase 1: the unmodified graph (with every residual, or the operands of its fused sum, as an
	// extra output: extra outputs change nothing that is computed). Everything later phases compare
	// against is recorded here as plain arrays.
	const ref = await phase(ort, options, 'original graph: cached steps, uncached forward', o, async (open) => {
		const probe = probeModel(decodeModel(graphBytes), d);
		const s = await open(encodeModel(probe.model));
		const run: Run = (f) => s.run(f);
		const perSeq = [];
		let cached = 0;
		for (const [i, seq] of sequences.entries()) {
			const outs = await runSchedule(ort, io, seq, stepwise, run);
			const uncached = floats((await runSchedule(ort, io, seq, [n], run))[0][io.logits]);
			// Every schedule on the first sequence; on the others, the stepwise run already made.
			cached = Math.max(
				cached,
				i === 0 ? await compareSchedules(ort, io, seq, schedules, run, uncached, refused) : maxAbsDiff(concatLogits(io, outs), uncached)
			);
			perSeq.push({
				uncached,
				logits: outs.map((out) => floats(out[io.logits])),
				residuals: outs.map((out) => everyBoundary.map((b) => probe.read(b, out)))
			});
		}
		return { perSeq, cached };
	});

	// Phase 2: cut at every boundary.
	const residualDiff: Record<string, number> = {};
	const all = await phase(ort, options, 'segmented graph (cut at every hook)', o, async (open) => {
		const { cuts, withEmbeds, externalData } = segmentsAt(d, everyBoundary, o);
		const sessions: Ort.InferenceSession[] = [];
		for (const c of cuts) sessions.push(await open(c.bytes, externalData));
		const run: Run = (f) => runChain(cuts, sessions, withEmbeds(ort, f));
		let logitDiff = 0;
		let cached = 0;
		for (const [i, seq] of sequences.entries()) {
			const r = ref.perSeq[i];
			const outs = await runSchedule(ort, io, seq, stepwise, run);
			for (const [s, out] of outs.entries()) {
				logitDiff = Math.max(logitDiff, maxAbsDiff(r.logits[s], floats(out[io.logits])));
				for (const b of everyBoundary) {
					const name = boundaryName(b, trace.nLayers);
					residualDiff[name] = Math.max(residualDiff[name] ?? 0, maxAbsDiff(r.residuals[s][b], floats(out[name])));
				}
			}
			cached = Math.max(
				cached,
				i === 0 ? await compareSchedules(ort, io, seq, schedules, run, r.uncached, refused) : maxAbsDiff(concatLogits(io, outs), r.uncached)
			);
		}
		return { logitDiff, cached };
	});

	// Phase 3: one cut in the middle: the chain the app uses most.
	const mid = Math.max(1, Math.floor(trace.nLayers / 2));
	const cutAtOneDiff = await phase(ort, options, `segmented graph (cut at ${boundaryName(mid, trace.nLayers)})`, o, async (open) => {
		const { cuts, withEmbeds, externalData } = segmentsAt(d, [mid], o);
		const sessions: Ort.InferenceSession[] = [];
		for (const c of cuts) sessions.push(await open(c.bytes, externalData));
		let diff = 0;
		for (const [i, seq] of sequences.entries()) {
			const outs = await runSchedule(ort, io, seq, stepwise, (f) => runChain(cuts, sessions, withEmbeds(ort, f)));
			for (const [s, out] of outs.entries()) diff = Math.max(diff, maxAbsDiff(ref.perSeq[i].logits[s], floats(out[io.logits])));
		}
		return diff;
	});

	const steering = await verifySteering(ort, d, graphBytes, options, o, sequences[0], stepwise, ref.perSeq[0].logits, random);
	return {
		sequences: sequences.length,
		steps: steps + 1,
		cachedVsUncached: {
			original: ref.cached,
			segmented: all.cached,
			schedules: schedules.map((s) => s.join('+')),
			refused: uniqueRefusals(refused)
		},
		maxAbsLogitDiff: all.logitDiff,
		maxAbsResidualDiff: residualDiff,
		steering,
		cutAtOne: { hook: boundaryName(mid, trace.nLayers), maxAbsLogitDiff: cutAtOneDiff }
	};
}

/**
 * Only the cache check (1 above), on the unmodified graph: needs no residual trace, so it serves
 * graphs surgery cannot cut, and checks `describeDecoderIo` alone. Returns the max abs difference
 * and the schedules fed.
 */
export async function verifyCache(
	ort: OrtModule,
	graphBytes: Uint8Array,
	o: VerifyOptions & {
		vocabSize: number;
		/** Feed the graph through this wiring instead of describeDecoderIo's (a test shows a miswired cache fails). */
		io?: DecoderIo;
	}
): Promise<{ maxAbsDiff: number; schedules: string[]; refused: CacheCheck['refused']; io: DecoderIo }> {
	const io = o.io ?? describeDecoderIo(new GraphIndex(decodeModel(graphBytes)));
	const { sequences, promptLength, steps } = randomSequences(o, o.vocabSize, io.maxSeqLen);
	const n = promptLength + steps;
	const schedules = cacheSchedules(n, promptLength);
	const refused: CacheCheck['refused'] = [];
	const diff = await phase(ort, sessionOptions(o), 'original graph: cached vs uncached', o, async (open) => {
		const s = await open(graphBytes);
		const run: Run = (f) => s.run(f);
		let m = 0;
		for (const seq of sequences) {
			const uncached = floats((await runSchedule(ort, io, seq, [n], run))[0][io.logits]);
			m = Math.max(m, await compareSchedules(ort, io, seq, schedules, run, uncached, refused));
		}
		return m;
	});
	return { maxAbsDiff: diff, schedules: schedules.map((s) => s.join('+')), refused: uniqueRefusals(refused), io };
}

/** Max |cached − uncached| over the schedules; a chunked prefill the graph refuses is recorded in `refused`. */
async function compareSchedules(
	ort: OrtModule,
	io: DecoderIo,
	seq: number[],
	schedules: number[][],
	run: Run,
	uncached: Float32Array,
	refused: CacheCheck['refused']
): Promise<number> {
	let m = 0;
	for (const sched of schedules) {
		let cached: Float32Array;
		try {
			cached = await cachedLogits(ort, io, seq, sched, run);
		} catch (e) {
			// Several tokens on top of a cache: the one thing an export may legitimately not support.
			if (!(sched[0] > 1 && sched[1] > 1)) throw e;
			refused.push({ schedule: sched.join('+'), reason: reasonOf(e) });
			continue;
		}
		m = Math.max(m, maxAbsDiff(cached, uncached));
	}
	return m;
}

function uniqueRefusals(r: CacheCheck['refused']): CacheCheck['refused'] {
	return [...new Map(r.map((x) => [x.schedule + x.reason, x])).values()];
}

/** Feeds `seq` in chunks of the given lengths, carrying the cache; returns every step's outputs. */
async function runSchedule(
	ort: OrtModule,
	io: DecoderIo,
	seq: number[],
	chunks: number[],
	run: Run
): Promise<Record<string, Ort.Tensor>[]> {
	const past = new Map(io.kv.map((p) => [p.past, emptyPast(ort, p)]));
	const outs: Record<string, Ort.Tensor>[] = [];
	let position = 0;
	for (const len of chunks) {
		const tokens = seq.slice(position, position + len);
		const out = await run({ ...stepFeeds(ort, io, tokens, position), ...Object.fromEntries(past) });
		for (const p of io.kv) {
			if (!out[p.present]) throw new Error(`the step returned no "${p.present}" to feed back as "${p.past}"`);
			past.set(p.past, out[p.present]);
		}
		outs.push(out);
		position += len;
	}
	return outs;
}

/** Every position's logits of a cached run, in order: [n × vocab]. */
async function cachedLogits(ort: OrtModule, io: DecoderIo, seq: number[], chunks: number[], run: Run): Promise<Float32Array> {
	return concatLogits(io, await runSchedule(ort, io, seq, chunks, run));
}

function concatLogits(io: DecoderIo, outs: Record<string, Ort.Tensor>[]): Float32Array {
	const rows = outs.map((out) => floats(out[io.logits]));
	const all = new Float32Array(rows.reduce((a, r) => a + r.length, 0));
	let at = 0;
	for (const r of rows) (all.set(r, at), (at += r.length));
	return all;
}

/**
 * The graph cut at these boundaries as the app cuts it (the token embedding's lookup taken out where
 * it can be: embedding-outside.ts; the head's weight in pieces: weight-pieces.ts), the step's feeds
 * with the embedding rows it then reads, and the weights files with the column files the pieces read.
 */
function segmentsAt(d: ExportedDecoder, boundaries: number[], o: VerifyOptions) {
	const cuts = cutExportedDecoder(
		d,
		boundaries.map((b) => boundaryName(b, d.trace.nLayers))
	);
	const spec = cuts.find((c) => c.embedding)?.embedding;
	const rows = spec ? EmbeddingRows.open(spec, o.externalData) : null;
	const withEmbeds = (ort: OrtModule, f: Record<string, Ort.Tensor>) =>
		rows ? { ...f, [rows.spec.input]: rows.tensor(ort, f[rows.spec.ids]) } : f;
	return { cuts, withEmbeds, externalData: withColumnFiles(o.externalData, cuts[0]?.columnFiles ?? []) };
}

/** Runs segments in order; each reads what it needs from the step's inputs and earlier outputs. */
export async function runChain(
	segments: CutSegment[],
	sessions: Ort.InferenceSession[],
	feeds: Record<string, Ort.Tensor>,
	between?: (hook: string, pool: Record<string, Ort.Tensor>) => void
): Promise<Record<string, Ort.Tensor>> {
	const pool: Record<string, Ort.Tensor> = { ...feeds };
	for (const [i, seg] of segments.entries()) {
		const out = await sessions[i].run(Object.fromEntries(seg.inputNames.map((n) => [n, pool[n]])));
		Object.assign(pool, out);
		if (seg.residualOut) between?.(seg.residualOut, pool);
	}
	return pool;
}

interface Probe {
	model: ModelProto;
	/** The residual at boundary b from the probe's outputs. */
	read(b: number, out: Record<string, Ort.Tensor>): Float32Array;
}

function probeModel(model: ModelProto, d: ExportedDecoder): Probe {
	const g = new GraphIndex(model);
	const elemType = g.elemType(d.trace.embedding) ?? 1;
	const extra = new Set<string>();
	const plan = d.trace.boundaries.map((b) => {
		const named = g.producer.has(b.tensor) || g.graphInputs.has(b.tensor);
		const parts = named ? [b.tensor] : b.sumOf;
		for (const t of parts) if (!g.initializers.has(t)) extra.add(t);
		return parts;
	});
	// A fused bias is an initializer: read it from the file rather than as an output.
	const constant = (t: string) => {
		const init = g.initializers.get(t)!;
		const raw = init.rawData!;
		const copy = raw.slice().buffer;
		if (init.dataType === 10) return Float32Array.from(new Uint16Array(copy), fromHalf);
		if (init.dataType === 1) return new Float32Array(copy);
		throw new Error(`cannot read the initializer "${t}"`);
	};
	for (const t of extra) if (!g.graphOutputs.has(t)) model.graph!.output!.push({ name: t, type: { tensorType: { elemType } } });
	return {
		model,
		read(b, out) {
			const parts = plan[b].map((t) => (g.initializers.has(t) ? constant(t) : floats(out[t])));
			const sum = new Float32Array(parts[0].length);
			for (const p of parts) {
				// A fused bias is [d_model]; the operands are [1, S, d_model].
				for (let i = 0; i < sum.length; i++) sum[i] += p.length === sum.length ? p[i] : p[i % p.length];
			}
			return sum;
		}
	};
}

async function verifySteering(
	ort: OrtModule,
	d: ExportedDecoder,
	graphBytes: Uint8Array,
	options: Ort.InferenceSession.SessionOptions,
	o: VerifyOptions,
	seq: number[],
	stepwise: number[],
	unsteered: Float32Array[],
	random: () => number
): Promise<VerifyReport['steering']> {
	const { trace, io } = d;
	// A boundary that the unmodified graph names and a layer reads (not the fused last sum).
	const b = [...trace.boundaries.keys()].reverse().find((i) => i < trace.nLayers && !trace.boundaries[i].exposed);
	if (b === undefined) return null;
	const tensor = trace.boundaries[b].tensor;
	const v = Float32Array.from({ length: trace.dModel }, () => (random() - 0.5) * 4);
	const fp16 = trace.dtype === 'float16';
	const hook = boundaryName(b, trace.nLayers);
	const steeredName = `${tensor}+v`;

	// Independent of the cut: insert `tensor + v` into the unmodified graph and rewire every reader
	// (where a fused norm also hands its normalised sum to the next branch, that is recomputed from
	// the edited sum first; the unsteered comparison above shows the recomputation is exact).
	const edited = await phase(ort, options, `steering: the graph with an Add inserted at ${hook}`, o, async (open) => {
		const model = unfuseAtCuts(new GraphIndex(decodeModel(graphBytes)), [tensor]).model;
		model.graph = {
			...model.graph!,
			node: [...model.graph!.node!],
			output: [...model.graph!.output!],
			initializer: [...model.graph!.initializer!]
		};
		for (const n of model.graph!.node!) n.input = n.input!.map((t) => (t === tensor ? steeredName : t));
		const vName = 'loupe/verify/v';
		model.graph!.initializer!.push(
			fp16
				? { name: vName, dataType: 10, dims: [trace.dModel], rawData: new Uint8Array(Uint16Array.from(v, toHalf).buffer) }
				: { name: vName, dataType: 1, dims: [trace.dModel], rawData: new Uint8Array(v.buffer.slice(0)) }
		);
		model.graph!.node!.push({ name: 'loupe/verify/add', opType: 'Add', input: [tensor, vName], output: [steeredName] });
		model.graph!.output!.push({ name: steeredName, type: { tensorType: { elemType: fp16 ? 10 : 1 } } });
		model.graph!.output!.push({ name: tensor, type: { tensorType: { elemType: fp16 ? 10 : 1 } } });
		const s = await open(encodeModel(model));
		const outs = await runSchedule(ort, io, seq, stepwise, (f) => s.run(f));
		return outs.map((out) => ({ logits: floats(out[io.logits]), before: floats(out[tensor]), after: floats(out[steeredName]) }));
	});

	return phase(ort, options, `steering: v added between segments at ${hook}`, o, async (open) => {
		const { cuts: cut, withEmbeds, externalData } = segmentsAt(d, [b], o);
		const sessions: Ort.InferenceSession[] = [];
		for (const c of cut) sessions.push(await open(c.bytes, externalData));
		const addV = (name: string, pool: Record<string, Ort.Tensor>) => {
			const t = pool[name];
			const x = floats(t);
			for (let i = 0; i < x.length; i++) x[i] += v[i % v.length];
			pool[name] = fp16 ? new ort.Tensor('float16', Uint16Array.from(x, toHalf), t.dims) : new ort.Tensor('float32', x, t.dims);
		};
		const seg = await runSchedule(ort, io, seq, stepwise, (f) => runChain(cut, sessions, withEmbeds(ort, f), addV));
		let maxLogit = 0;
		let maxInput = 0;
		let change = 0;
		for (const [s, r] of edited.entries()) {
			maxLogit = Math.max(maxLogit, maxAbsDiff(r.logits, floats(seg[s][io.logits])));
			change = Math.max(change, maxAbsDiff(r.logits, unsteered[s]));
			for (let i = 0; i < r.after.length; i++) maxInput = Math.max(maxInput, Math.abs(r.after[i] - r.before[i] - v[i % v.length]));
		}
		return { hook, maxAbsLogitDiff: maxLogit, maxAbsInputDiff: maxInput, logitChange: change };
	});
}

let halfTable: Float32Array | undefined;

export function floats(t: Ort.Tensor): Float32Array {
	if (t.type === 'float32') return Float32Array.from(t.data as Float32Array);
	if (t.type === 'float16') {
		// A table of all 65536 halves: fp16 logits are vocab × positions wide, and decoding each one
		// through fromHalf made reading them most of a check's time.
		halfTable ??= Float32Array.from({ length: 65536 }, (_, h) => fromHalf(h));
		const h = t.data as Uint16Array;
		const out = new Float32Array(h.length);
		for (let i = 0; i < h.length; i++) out[i] = halfTable[h[i]];
		return out;
	}
	throw new Error(`expected a float tensor, got ${t.type}`);
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
	if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
	let m = 0;
	for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
	return m;
}

/**
 * Checks graph surgery against the unmodified graph, in onnxruntime (any backend; the CLI and the
 * unit tests use the wasm one in Node):
 *
 *  1. logits: the original model vs the segmented one (cut at every boundary), same token sequences,
 *     several steps with the KV cache carried from step to step;
 *  2. residuals: what the segmented model hands across each cut vs the same tensor read from the
 *     unmodified graph by adding it as a plain graph output (or, where the export left a fused
 *     sum unnamed, the sum of the fused op's operands, added up here);
 *  3. editing: a vector v added between segments at a hook gives the same logits as the unmodified
 *     graph with an Add node inserted at that tensor, and the next layer reads exactly resid + v.
 */
import type * as Ort from 'onnxruntime-web';
import { GraphIndex, decodeModel, encodeModel, type ModelProto } from './graph';
import { openExportedDecoder, type ExportedDecoder } from './hook-manifest';
import { cutAtBoundaries, unfuseAtCuts, type CutSegment } from './cut-segments';
import { emptyPast, stepFeeds, type DecoderIo } from './decoder-io';
import { boundaryName } from '../hooks';
import { seededRandom } from '../../sample/prng';
import { fromHalf, toHalf } from './half';

type OrtModule = typeof Ort;

export interface VerifyOptions {
	/** External data files by the path the graph names (e.g. `model.onnx.data`). */
	externalData?: { path: string; data: Uint8Array }[];
	sequences?: number;
	promptLength?: number;
	steps?: number;
	seed?: number;
}

export interface VerifyReport {
	sequences: number;
	steps: number;
	maxAbsLogitDiff: number;
	/** Max |segmented − original| of the residual at each boundary's canonical hook name. */
	maxAbsResidualDiff: Record<string, number>;
	steering: { hook: string; maxAbsLogitDiff: number; maxAbsInputDiff: number; logitChange: number } | null;
	cutAtOne: { hook: string; maxAbsLogitDiff: number };
}

export async function verifySurgery(ort: OrtModule, graphBytes: Uint8Array, o: VerifyOptions = {}): Promise<VerifyReport> {
	const d = openExportedDecoder(graphBytes);
	const { trace, io } = d;
	const options: Ort.InferenceSession.SessionOptions = { executionProviders: ['wasm'], externalData: o.externalData };
	const session = (bytes: Uint8Array) => ort.InferenceSession.create(bytes, options);
	const random = seededRandom(o.seed ?? 1);
	const nSeq = o.sequences ?? 3;
	const steps = o.steps ?? 3;
	const promptLength = o.promptLength ?? 5;
	const sequences = Array.from({ length: nSeq }, () =>
		Array.from({ length: promptLength + steps }, () => Math.floor(random() * trace.vocabSize))
	);

	// The unmodified graph with every residual (or the operands of its fused sum) as an extra output.
	const probe = probeModel(decodeModel(graphBytes), d);
	const original = await session(encodeModel(probe.model));
	const everyBoundary = trace.boundaries.map((_, b) => b);
	const allCuts = cutAtBoundaries(d.graph, trace, everyBoundary);
	const segmented = await Promise.all(allCuts.map((s) => session(s.bytes)));

	let maxAbsLogitDiff = 0;
	const residualDiff: Record<string, number> = {};
	for (const seq of sequences) {
		const ref = await runSteps(ort, io, seq, promptLength, (f) => original.run(f));
		const seg = await runSteps(ort, io, seq, promptLength, (f) => runChain(allCuts, segmented, f));
		for (let s = 0; s < ref.length; s++) {
			maxAbsLogitDiff = Math.max(maxAbsLogitDiff, maxAbsDiff(floats(ref[s][io.logits]), floats(seg[s][io.logits])));
			for (const b of everyBoundary) {
				const name = boundaryName(b, trace.nLayers);
				const expected = probe.read(b, ref[s]);
				residualDiff[name] = Math.max(residualDiff[name] ?? 0, maxAbsDiff(expected, floats(seg[s][name])));
			}
		}
	}

	// One cut in the middle: the chain the app uses most.
	const mid = Math.max(1, Math.floor(trace.nLayers / 2));
	const oneCut = cutAtBoundaries(d.graph, trace, [mid]);
	const oneCutSessions = await Promise.all(oneCut.map((s) => session(s.bytes)));
	let cutAtOneDiff = 0;
	for (const seq of sequences) {
		const ref = await runSteps(ort, io, seq, promptLength, (f) => original.run(f));
		const seg = await runSteps(ort, io, seq, promptLength, (f) => runChain(oneCut, oneCutSessions, f));
		for (let s = 0; s < ref.length; s++)
			cutAtOneDiff = Math.max(cutAtOneDiff, maxAbsDiff(floats(ref[s][io.logits]), floats(seg[s][io.logits])));
	}

	const steering = await verifySteering(ort, d, graphBytes, session, sequences[0], promptLength, random);
	return {
		sequences: nSeq,
		steps: steps + 1,
		maxAbsLogitDiff,
		maxAbsResidualDiff: residualDiff,
		steering,
		cutAtOne: { hook: boundaryName(mid, trace.nLayers), maxAbsLogitDiff: cutAtOneDiff }
	};
}

/** Runs a prompt then one token per step, carrying the cache; returns every step's outputs. */
async function runSteps(
	ort: OrtModule,
	io: DecoderIo,
	seq: number[],
	promptLength: number,
	run: (feeds: Record<string, Ort.Tensor>) => Promise<Record<string, Ort.Tensor>>
): Promise<Record<string, Ort.Tensor>[]> {
	const past = new Map(io.kv.map((p) => [p.past, emptyPast(ort, p)]));
	const outs: Record<string, Ort.Tensor>[] = [];
	let position = 0;
	for (let end = promptLength; end <= seq.length; end++) {
		const tokens = seq.slice(position, end);
		const feeds = { ...stepFeeds(ort, io, tokens, position), ...Object.fromEntries(past) };
		const out = await run(feeds);
		for (const p of io.kv) past.set(p.past, out[p.present]);
		outs.push(out);
		position = end;
	}
	return outs;
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
	for (const t of extra)
		if (!g.graphOutputs.has(t)) model.graph!.output!.push({ name: t, type: { tensorType: { elemType } } });
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
	session: (bytes: Uint8Array) => Promise<Ort.InferenceSession>,
	seq: number[],
	promptLength: number,
	random: () => number
): Promise<VerifyReport['steering']> {
	const { trace, io } = d;
	// A boundary that the unmodified graph names and a layer reads (not the fused last sum).
	const b = [...trace.boundaries.keys()].reverse().find((i) => i < trace.nLayers && !trace.boundaries[i].exposed);
	if (b === undefined) return null;
	const tensor = trace.boundaries[b].tensor;
	const v = Float32Array.from({ length: trace.dModel }, () => (random() - 0.5) * 4);
	const fp16 = trace.dtype === 'float16';

	// Independent of the cut: insert `tensor + v` into the unmodified graph and rewire every reader
	// (where a fused norm also hands its normalised sum to the next branch, that is recomputed from
	// the edited sum first; the unsteered comparison above shows the recomputation is exact).
	const model = unfuseAtCuts(new GraphIndex(decodeModel(graphBytes)), [tensor]).model;
	model.graph = { ...model.graph!, node: [...model.graph!.node!], output: [...model.graph!.output!], initializer: [...model.graph!.initializer!] };
	const steeredName = `${tensor}+v`;
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
	const edited = await session(encodeModel(model));

	const cut = cutAtBoundaries(d.graph, trace, [b]);
	const sessions = await Promise.all(cut.map((s) => session(s.bytes)));
	const hook = boundaryName(b, trace.nLayers);
	const addV = (name: string, pool: Record<string, Ort.Tensor>) => {
		const t = pool[name];
		const x = floats(t);
		for (let i = 0; i < x.length; i++) x[i] += v[i % v.length];
		pool[name] = fp16
			? new ort.Tensor('float16', Uint16Array.from(x, toHalf), t.dims)
			: new ort.Tensor('float32', x, t.dims);
	};
	const plain = await session(graphBytes);
	let maxLogit = 0;
	let maxInput = 0;
	let change = 0;
	const ref = await runSteps(ort, io, seq, promptLength, (f) => edited.run(f));
	const seg = await runSteps(ort, io, seq, promptLength, (f) => runChain(cut, sessions, f, addV));
	const unsteered = await runSteps(ort, io, seq, promptLength, (f) => plain.run(f));
	for (let s = 0; s < ref.length; s++) {
		maxLogit = Math.max(maxLogit, maxAbsDiff(floats(ref[s][io.logits]), floats(seg[s][io.logits])));
		change = Math.max(change, maxAbsDiff(floats(ref[s][io.logits]), floats(unsteered[s][io.logits])));
		const before = floats(ref[s][tensor]);
		const after = floats(ref[s][steeredName]);
		for (let i = 0; i < after.length; i++) maxInput = Math.max(maxInput, Math.abs(after[i] - before[i] - v[i % v.length]));
	}
	return { hook, maxAbsLogitDiff: maxLogit, maxAbsInputDiff: maxInput, logitChange: change };
}

export function floats(t: Ort.Tensor): Float32Array {
	if (t.type === 'float32') return Float32Array.from(t.data as Float32Array);
	if (t.type === 'float16') return Float32Array.from(t.data as Uint16Array, fromHalf);
	throw new Error(`expected a float tensor, got ${t.type}`);
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
	if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
	let m = 0;
	for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
	return m;
}

/**
 * Test helpers for checks of graph surgery against the unmodified graph: one onnxruntime session on
 * the original bytes (or a copy edited with plain protobuf edits, no surgery code), a segmented
 * model for the app's runner, and in-place edits of a residual as the engine's CPU steering does.
 */
import * as ort from 'onnxruntime-web';
import { decodeModel, encodeModel } from '../src/lib/engine/model/onnx/graph';
import { cutExportedDecoder, type ExportedDecoder } from '../src/lib/engine/model/onnx/hook-manifest';
import { emptyPast, stepFeeds } from '../src/lib/engine/model/onnx/decoder-io';
import { fromHalf, toHalf } from '../src/lib/engine/model/onnx/half';
import type { SegmentedModel } from '../src/lib/engine/model/segments';

export type External = { path: string; data: Uint8Array }[] | undefined;

/** A tensor's values as fp32 (fp16 exports hand Uint16Array). */
export function values(t: ort.Tensor): Float32Array {
	if (t.type === 'float32') return Float32Array.from(t.data as Float32Array);
	if (t.type === 'float16') return Float32Array.from(t.data as Uint16Array, fromHalf);
	throw new Error(`expected a float tensor, got ${t.type}`);
}

/** resid += v at every position, in place, as the engine's steering does on the CPU. */
export function addInPlace(t: ort.Tensor, v: Float32Array) {
	if (t.type === 'float32') {
		const x = t.data as Float32Array;
		for (let i = 0; i < x.length; i++) x[i] += v[i % v.length];
	} else {
		const x = t.data as Uint16Array;
		for (let i = 0; i < x.length; i++) x[i] = toHalf(fromHalf(x[i]) + v[i % v.length]);
	}
}

/** The unmodified graph with `tensor + v` in place of `tensor` for every reader (and `extra` as outputs). */
export function withAdd(bytes: Uint8Array, tensor: string | null, v: Float32Array, fp16: boolean, extra: string[] = []): Uint8Array {
	const model = decodeModel(bytes);
	const g = model.graph!;
	g.node = [...g.node!];
	g.output = [...g.output!];
	g.initializer = [...g.initializer!];
	if (tensor) {
		const steered = `${tensor}+v`;
		for (const n of g.node) n.input = n.input!.map((t) => (t === tensor ? steered : t));
		g.initializer.push(
			fp16
				? { name: 'test/v', dataType: 10, dims: [v.length], rawData: new Uint8Array(Uint16Array.from(v, toHalf).buffer) }
				: { name: 'test/v', dataType: 1, dims: [v.length], rawData: new Uint8Array(v.buffer.slice(0)) }
		);
		g.node.push({ name: 'test/add', opType: 'Add', input: [tensor, 'test/v'], output: [steered] });
	}
	for (const t of extra)
		if (!g.output.some((o) => o.name === t)) g.output.push({ name: t, type: { tensorType: { elemType: fp16 ? 10 : 1 } } });
	return encodeModel(model);
}

/** One forward of the unmodified graph (or an edited copy) over `ids` from an empty past. */
export async function runWhole(d: ExportedDecoder, bytes: Uint8Array, externalData: External, ids: number[]) {
	const s = await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'], externalData });
	try {
		const feeds = { ...stepFeeds(ort, d.io, ids, 0), ...Object.fromEntries(d.io.kv.map((p) => [p.past, emptyPast(ort, p)])) };
		return await s.run(feeds);
	} finally {
		await s.release();
	}
}

export function segmentedAt(d: ExportedDecoder, hooks: string[], externalData: External): SegmentedModel {
	const { trace } = d;
	return {
		shape: { nLayers: trace.nLayers, dModel: trace.dModel, vocabSize: trace.vocabSize, maxSeqLen: 128 },
		io: d.io,
		cuts: [],
		segments: cutExportedDecoder(d, hooks),
		externalData
	};
}

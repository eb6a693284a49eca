/**
 * The reference for "adding v at hook h" checks, for many hooks in one onnxruntime session: the
 * unmodified graph with `tensor + g·v` in place of each listed tensor for every reader (plain protobuf
 * edits, no surgery code, as graph-checks' withAdd), where each g is a scalar graph input. Fed g = 1 at
 * one tensor and 0 at the others, it computes what withAdd's graph with that one Add computes (0·v is
 * 0, and x + 0 is x), but the export is compiled once instead of once per hook: creating a session of
 * a whole export was most of these checks' time.
 */
import * as ort from 'onnxruntime-web';
import { decodeModel, encodeModel } from '../../src/lib/engine/model/onnx/graph';
import { emptyPast, stepFeeds } from '../../src/lib/engine/model/onnx/decoder-io';
import type { ExportedDecoder } from '../../src/lib/engine/model/onnx/hook-manifest';
import { toHalf } from '../../src/lib/engine/model/onnx/half';
import type { External } from '../graph-checks';

const gateName = (i: number) => `test/gate/${i}`;

/** The unmodified graph with `tensors[i] + gate_i·v` in place of `tensors[i]`, gate_i the scalar input `test/gate/i`. */
export function withGatedAdds(bytes: Uint8Array, tensors: string[], v: Float32Array, fp16: boolean): Uint8Array {
	const model = decodeModel(bytes);
	const g = model.graph!;
	const elemType = fp16 ? 10 : 1;
	const steered = new Map(tensors.map((t, i) => [t, `${t}+g${i}v`]));
	g.node = g.node!.map((n) => ({ ...n, input: n.input!.map((t) => steered.get(t) ?? t) }));
	g.input = [...g.input!, ...tensors.map((_, i) => ({ name: gateName(i), type: { tensorType: { elemType, shape: { dim: [] } } } }))];
	g.initializer = [
		...g.initializer!,
		fp16
			? { name: 'test/v', dataType: 10, dims: [v.length], rawData: new Uint8Array(Uint16Array.from(v, toHalf).buffer) }
			: { name: 'test/v', dataType: 1, dims: [v.length], rawData: new Uint8Array(v.buffer.slice(0)) }
	];
	tensors.forEach((t, i) =>
		g.node!.push(
			{ name: `test/mul/${i}`, opType: 'Mul', input: ['test/v', gateName(i)], output: [`test/gv/${i}`] },
			{ name: `test/add/${i}`, opType: 'Add', input: [t, `test/gv/${i}`], output: [steered.get(t)!] }
		)
	);
	return encodeModel(model);
}

/** One session of a graph, kept for several forwards: `run(ids, feeds)` is one forward over `ids` from an empty past. Release it when done. */
export async function graphSession(d: ExportedDecoder, bytes: Uint8Array, externalData: External) {
	const s = await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'], externalData });
	return {
		run: (ids: number[], feeds: Record<string, ort.Tensor> = {}) =>
			s.run({ ...stepFeeds(ort, d.io, ids, 0), ...Object.fromEntries(d.io.kv.map((p) => [p.past, emptyPast(ort, p)])), ...feeds }),
		release: () => s.release()
	};
}

/**
 * One session of `withGatedAdds` over the distinct `tensors`: `run(t)` is the logits of one forward
 * over `ids` from an empty past with v added at tensor `t` only. Release it when done.
 */
export async function gatedAddSession(
	d: ExportedDecoder,
	bytes: Uint8Array,
	externalData: External,
	listed: string[],
	v: Float32Array,
	fp16: boolean,
	ids: number[]
) {
	const tensors = [...new Set(listed)];
	const s = await graphSession(d, withGatedAdds(bytes, tensors, v, fp16), externalData);
	const gate = (on: boolean) =>
		fp16 ? new ort.Tensor('float16', Uint16Array.of(toHalf(on ? 1 : 0)), []) : new ort.Tensor('float32', Float32Array.of(on ? 1 : 0), []);
	return {
		async run(tensor: string) {
			const at = tensors.indexOf(tensor);
			if (at < 0) throw new Error(`${tensor} has no gated Add`);
			return (await s.run(ids, Object.fromEntries(tensors.map((_, i) => [gateName(i), gate(i === at)]))))[d.io.logits];
		},
		release: () => s.release()
	};
}

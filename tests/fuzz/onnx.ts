/**
 * Structure-aware ONNX mutations: a tiny decoder (Loupe's builder, in an exporter's style) decoded
 * to its ModelProto, one thing in it changed (a node's input rewired to another tensor, which can
 * make a cycle, or to a name nobody writes; a node dropped or duplicated; an op type swapped; an
 * initializer's dims, type or data location changed; graph inputs or outputs dropped), and encoded
 * again; and the same decoder with every initializer moved to an external-data file, whose
 * location, offset and length entries and whose real length are then mutated.
 */
import fc from 'fast-check';
import { onnx, type ModelProto } from '../../src/lib/engine/model/onnx/graph';
import { edgeInt } from './bytes';

const decode = (b: Uint8Array) => onnx.ModelProto.toObject(onnx.ModelProto.decode(b), { defaults: false, longs: Number }) as ModelProto;
const encode = (m: ModelProto) => new Uint8Array(onnx.ModelProto.encode(onnx.ModelProto.fromObject(m)).finish()); // a copy, not a pooled Buffer

export interface MutatedModel {
	bytes: Uint8Array;
	how: string;
}

/** One structural mutation of the graph per case, encoded as a file. */
export function mutatedModel(base: Uint8Array): fc.Arbitrary<MutatedModel> {
	const model = decode(base);
	const nodes = model.graph!.node!;
	const inits = model.graph!.initializer!;
	const tensors = [...new Set(nodes.flatMap((n) => [...(n.input ?? []), ...(n.output ?? [])]))];
	const ops = [...new Set(nodes.map((n) => n.opType!))];
	const node = fc.nat({ max: nodes.length - 1 });
	const withModel = (how: string, f: (m: ModelProto) => void) => {
		const m = structuredClone(model);
		f(m);
		return { bytes: encode(m), how };
	};
	return fc.oneof(
		fc
			.tuple(node, fc.nat(8), fc.oneof(fc.constantFrom(...tensors), fc.constantFrom('', 'nobody', 'input_ids', 'logits')))
			.map(([i, slot, t]) =>
				withModel(`node ${i} input ${slot} rewired to "${t}"`, (m) => {
					const ins = m.graph!.node![i].input ?? (m.graph!.node![i].input = []);
					ins[Math.min(slot, ins.length)] = t;
				})
			),
		fc.tuple(node, fc.nat(3), fc.oneof(fc.constantFrom(...tensors), fc.constant(''))).map(([i, slot, t]) =>
			withModel(`node ${i} output ${slot} renamed "${t}"`, (m) => {
				const outs = m.graph!.node![i].output ?? (m.graph!.node![i].output = []);
				outs[Math.min(slot, outs.length)] = t;
			})
		),
		node.map((i) => withModel(`node ${i} dropped`, (m) => m.graph!.node!.splice(i, 1))),
		node.map((i) => withModel(`node ${i} duplicated`, (m) => m.graph!.node!.splice(i, 0, structuredClone(m.graph!.node![i])))),
		fc
			.tuple(
				node,
				fc.oneof(fc.constantFrom(...ops), fc.constantFrom('If', 'Loop', 'Attention', 'SkipLayerNormalization', 'GroupQueryAttention', ''))
			)
			.map(([i, op]) => withModel(`node ${i} made a ${op || 'nameless op'}`, (m) => (m.graph!.node![i].opType = op))),
		fc
			.tuple(fc.nat({ max: inits.length - 1 }), fc.array(edgeInt(1000), { maxLength: 4 }))
			.map(([i, dims]) => withModel(`initializer ${i} dims set to [${dims}]`, (m) => (m.graph!.initializer![i].dims = dims))),
		fc
			.tuple(fc.nat({ max: inits.length - 1 }), fc.integer({ min: 0, max: 30 }))
			.map(([i, t]) => withModel(`initializer ${i} data type set to ${t}`, (m) => (m.graph!.initializer![i].dataType = t))),
		fc.nat({ max: inits.length - 1 }).map((i) => withModel(`initializer ${i} dropped`, (m) => m.graph!.initializer!.splice(i, 1))),
		fc
			.constantFrom('input', 'output', 'node', 'initializer')
			.map((k) => withModel(`graph ${k}s dropped`, (m) => ((m.graph as Record<string, unknown>)[k] = []))),
		fc.constant(withModel('no graph', (m) => delete m.graph))
	);
}

/** The decoder with every initializer of at least `minBytes` moved into one sidecar, in order, as exporters write it. */
export function externalized(base: Uint8Array, location = 'model.onnx_data', minBytes = 64): { model: ModelProto; sidecar: Uint8Array } {
	const model = decode(onnx.ModelProto.encode(onnx.ModelProto.decode(base)).finish());
	const parts: Uint8Array[] = [];
	let offset = 0;
	for (const t of model.graph!.initializer!) {
		const raw = t.rawData instanceof Uint8Array ? t.rawData : undefined;
		if (!raw || raw.length < minBytes) continue;
		parts.push(raw);
		t.dataLocation = 1;
		t.externalData = [
			{ key: 'location', value: location },
			{ key: 'offset', value: String(offset) },
			{ key: 'length', value: String(raw.length) }
		];
		delete t.rawData;
		offset += raw.length;
	}
	const sidecar = new Uint8Array(offset);
	let p = 0;
	for (const b of parts) sidecar.set(b, (p += b.length) - b.length);
	return { model, sidecar };
}

export interface MutatedExternal {
	graph: Uint8Array;
	model: ModelProto;
	sidecar: Uint8Array;
	how: string;
}

/** An externalized decoder with one entry or the sidecar's length changed. */
export function mutatedExternal(base: Uint8Array): fc.Arbitrary<MutatedExternal> {
	const { model, sidecar } = externalized(base);
	const ext = model
		.graph!.initializer!.map((t, i) => [t, i] as const)
		.filter(([t]) => t.dataLocation === 1)
		.map(([, i]) => i);
	const value = fc.oneof(
		edgeInt(sidecar.length).map(String),
		fc.constantFrom(
			'',
			'-1',
			'-0',
			'abc',
			'1e3',
			'0x10',
			'12.5',
			' 8',
			'99999999999999999999',
			String(sidecar.length),
			String(sidecar.length + 1),
			String(2 ** 53 + 1)
		)
	);
	const make = (how: string, f: (m: ModelProto) => void, side = sidecar) => {
		const m = structuredClone(model);
		f(m);
		return { graph: encode(m), model: m, sidecar: side, how };
	};
	return fc.oneof(
		fc.constant(make('the valid externalized graph', () => {})),
		fc.tuple(fc.constantFrom(...ext), fc.constantFrom('offset', 'length'), value).map(([i, key, v]) =>
			make(`initializer ${i} ${key} set to "${v}"`, (m) => {
				const e = m.graph!.initializer![i].externalData!.find((x) => x.key === key)!;
				e.value = v;
			})
		),
		fc.tuple(fc.constantFrom(...ext), fc.constantFrom('offset', 'length', 'location')).map(([i, key]) =>
			make(`initializer ${i} ${key} entry removed`, (m) => {
				const t = m.graph!.initializer![i];
				t.externalData = t.externalData!.filter((x) => x.key !== key);
			})
		),
		fc
			.tuple(
				fc.constantFrom(...ext),
				fc.constantFrom('other.onnx_data', '../model.onnx_data', '/etc/passwd', 'C:\\weights.bin', 'sub/../../x', '')
			)
			.map(([i, loc]) =>
				make(`initializer ${i} location "${loc}"`, (m) => {
					m.graph!.initializer![i].externalData!.find((x) => x.key === 'location')!.value = loc;
				})
			),
		fc.nat({ max: sidecar.length }).map((n) => make(`sidecar truncated to ${n} bytes`, () => {}, sidecar.slice(0, n))),
		fc.nat({ max: 64 }).map((n) => make(`sidecar extended by ${n} bytes`, () => {}, new Uint8Array(sidecar.length + n)))
	);
}

/**
 * A small helper for writing ONNX graphs by hand: named tensors, nodes with plain attributes,
 * fp32/int64 initializers, and serialisation to ModelProto bytes (through `onnx-proto`), with the
 * weights inside the graph (`toBytes`) or in one external-data file beside it (`toExternal`), as
 * large exports ship them.
 */
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;
const DT = onnx.TensorProto.DataType;
const AT = onnx.AttributeProto.AttributeType;

export type ElemType = 'float32' | 'int64';
export type Dim = number | string; // a number, or a symbolic name such as 'batch'
/** number -> INT, number[] -> INTS, string -> STRING, { float } -> FLOAT */
export type AttrValue = number | number[] | string | { float: number };

const elemTypeCode = (t: ElemType) => (t === 'float32' ? DT.FLOAT : DT.INT64);

function valueInfo(name: string, t: ElemType, dims: Dim[]): onnxProto.onnx.IValueInfoProto {
	return {
		name,
		type: {
			tensorType: {
				elemType: elemTypeCode(t),
				shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) }
			}
		}
	};
}

function attribute(name: string, v: AttrValue): onnxProto.onnx.IAttributeProto {
	if (typeof v === 'number') return { name, type: AT.INT, i: v };
	if (typeof v === 'string') return { name, type: AT.STRING, s: new TextEncoder().encode(v) };
	if (Array.isArray(v)) return { name, type: AT.INTS, ints: v };
	return { name, type: AT.FLOAT, f: v.float };
}

export class GraphBuilder {
	private nodes: onnxProto.onnx.INodeProto[] = [];
	private initializers: onnxProto.onnx.ITensorProto[] = [];
	private inputs: onnxProto.onnx.IValueInfoProto[] = [];
	private outputs: onnxProto.onnx.IValueInfoProto[] = [];
	private used = new Set<string>();
	private domains = new Set<string>();
	private constCache = new Map<string, string>();

	constructor(readonly name: string) {}

	/** A fresh tensor name under a readable scope, e.g. `/blocks.0/attn/q`. */
	fresh(hint: string): string {
		let name = hint;
		for (let i = 1; this.used.has(name); i++) name = `${hint}_${i}`;
		this.used.add(name);
		return name;
	}

	input(name: string, t: ElemType, dims: Dim[]): string {
		this.used.add(name);
		this.inputs.push(valueInfo(name, t, dims));
		return name;
	}

	output(name: string, t: ElemType, dims: Dim[]) {
		this.outputs.push(valueInfo(name, t, dims));
	}

	/** An fp32 initializer. The data is referenced, not copied, until `toBytes()`. */
	weight(hint: string, data: Float32Array, dims: number[]): string {
		const name = this.fresh(hint);
		this.initializers.push({
			name,
			dataType: DT.FLOAT,
			dims,
			rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
		});
		return name;
	}

	/** The fp32 values of an initializer added by `weight` (a view, not a copy), or undefined. */
	initializerData(name: string): Float32Array | undefined {
		const t = this.initializers.find((x) => x.name === name);
		if (!t?.rawData || t.dataType !== DT.FLOAT) return undefined;
		return new Float32Array(t.rawData.buffer, t.rawData.byteOffset, t.rawData.byteLength / 4);
	}

	/** A small int64 or fp32 constant, shared by value. */
	constant(values: number[], t: ElemType = 'int64', dims: number[] = [values.length]): string {
		const key = `${t}:${dims.join('x')}:${values.join(',')}`;
		const hit = this.constCache.get(key);
		if (hit) return hit;
		const name = this.fresh(
			`/const/${t}_${values
				.slice(0, 4)
				.join('_')
				.replace(/[^0-9a-z_-]/gi, '')}`
		);
		const raw =
			t === 'int64'
				? new Uint8Array(BigInt64Array.from(values.map((v) => BigInt(v))).buffer)
				: new Uint8Array(Float32Array.from(values).buffer);
		this.initializers.push({ name, dataType: elemTypeCode(t), dims, rawData: raw });
		this.constCache.set(key, name);
		return name;
	}

	scalar(value: number, t: ElemType = 'float32'): string {
		return this.constant([value], t, []);
	}

	/** Adds a node; returns its output name(s). */
	op(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, hint = `/${opType}`): string {
		return this.opN(opType, inputs, 1, attrs, hint)[0];
	}

	opN(opType: string, inputs: string[], nOutputs: number, attrs: Record<string, AttrValue> = {}, hint = `/${opType}`): string[] {
		const outputs = Array.from({ length: nOutputs }, (_, i) => this.fresh(nOutputs > 1 ? `${hint}_${i}` : hint));
		this.nodes.push({
			name: this.fresh(`${hint}:node`),
			opType,
			input: inputs,
			output: outputs,
			attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v))
		});
		return outputs;
	}

	/**
	 * A node with outputs named by the caller ('' leaves an optional output out), in a domain such
	 * as 'com.microsoft' for onnxruntime's fused ops.
	 */
	node(opType: string, inputs: string[], outputs: string[], attrs: Record<string, AttrValue> = {}, domain = '') {
		for (const o of outputs) if (o) this.used.add(o);
		if (domain) this.domains.add(domain);
		this.nodes.push({
			name: this.fresh(`/${opType}:node`),
			opType,
			domain,
			input: inputs,
			output: outputs,
			attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v))
		});
	}

	/** Renames the tensor `from` to `to` by an Identity node (used for graph outputs with stable names). */
	alias(from: string, to: string) {
		this.used.add(to);
		this.nodes.push({ name: this.fresh(`${to}:identity`), opType: 'Identity', input: [from], output: [to] });
	}

	/** Opset 21 and later need IR version 10 (onnxruntime refuses older IR with newer opsets). */
	toBytes(opset = 17, irVersion = opset >= 21 ? 10 : 8): Uint8Array {
		return onnx.ModelProto.encode(this.model(this.initializers, opset, irVersion)).finish();
	}

	/**
	 * The graph with every initializer of at least `minBytes` moved into one external-data file
	 * named `location` (dataLocation EXTERNAL, entries location/offset/length, as onnx's
	 * `save_model(..., save_as_external_data=True)` writes them), each at an offset that is a multiple
	 * of `align`. Returns the graph bytes and the file's bytes (allocated once, at its final size).
	 */
	toExternal(
		location: string,
		o: { opset?: number; irVersion?: number; minBytes?: number; align?: number } = {}
	): { graph: Uint8Array; data: Uint8Array } {
		const opset = o.opset ?? 17;
		const minBytes = o.minBytes ?? 1024;
		const align = o.align ?? 4096;
		const placed = new Map<onnxProto.onnx.ITensorProto, number>();
		let end = 0;
		for (const t of this.initializers) {
			const n = t.rawData?.byteLength ?? 0;
			if (n < minBytes) continue;
			end = Math.ceil(end / align) * align;
			placed.set(t, end);
			end += n;
		}
		const data = new Uint8Array(end);
		const initializers = this.initializers.map((t) => {
			const offset = placed.get(t);
			if (offset === undefined) return t;
			data.set(t.rawData!, offset);
			return {
				name: t.name,
				dataType: t.dataType,
				dims: t.dims,
				dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
				externalData: [
					{ key: 'location', value: location },
					{ key: 'offset', value: String(offset) },
					{ key: 'length', value: String(t.rawData!.byteLength) }
				]
			};
		});
		const graph = onnx.ModelProto.encode(this.model(initializers, opset, o.irVersion ?? (opset >= 21 ? 10 : 8))).finish();
		return { graph, data };
	}

	private model(initializer: onnxProto.onnx.ITensorProto[], opset: number, irVersion: number): onnxProto.onnx.ModelProto {
		return onnx.ModelProto.create({
			irVersion,
			producerName: 'loupe',
			opsetImport: [{ domain: '', version: opset }, ...[...this.domains].map((domain) => ({ domain, version: 1 }))],
			graph: {
				name: this.name,
				node: this.nodes,
				initializer,
				input: this.inputs,
				output: this.outputs
			}
		});
	}
}

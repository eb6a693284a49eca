/**
 * Reading an exported decoder's pieces by their structure, for decoder-weights.ts: constants (an
 * initializer or a Constant node, through casts and reshapes), float weights out of the weight
 * files, walks back through shape-only ops, and the written-out RMSNorm
 *
 *   y = w ⊙ (x · 1/√(mean(x²) + eps))      (Pow or Mul for x², Div(1, ·) or Reciprocal, Casts anywhere)
 *
 * recognised from its ops, whatever its nodes are called. A structure that is not there is a
 * `Refusal` with what was looked for, which decoder-weights.ts turns into the user's error.
 */
import type { GraphIndex, NodeProto, TensorProto } from './graph';
import { fromHalf } from './half';
import { initializerBytes, type ExternalFiles } from './initializer-bytes';

export class Refusal extends Error {}

export const CASTS = new Set(['Cast', 'Identity']);
/** Ops that move or repeat values without changing them: between a projection and attention's MatMuls. */
export const SHAPE_OPS = new Set(['Cast', 'Identity', 'Reshape', 'Transpose', 'Unsqueeze', 'Squeeze', 'Expand', 'Concat']);
/** What sits around a product without touching its values: the Reshapes of GPT-2's Conv1D, casts. */
const RESHAPE_ONLY = new Set(['Cast', 'Identity', 'Reshape']);

export interface Linear {
	/** What the product reads (back through reshapes). */
	x: string;
	/** The weight as stored, [in, out], and its bias. */
	w: Float32Array;
	dims: [number, number];
	b?: Float32Array;
	/** The initializer's name (with the slice taken of it): tells two products apart. */
	weight: string;
}

export class GraphReader {
	constructor(
		readonly g: GraphIndex,
		readonly files: ExternalFiles
	) {}

	node(t: string): NodeProto | undefined {
		return this.g.producer.get(t)?.node;
	}

	/** Back from `t` through the ops in `through`; a Concat is followed along its one input that is not a graph input (the KV cache's past). */
	back(t: string, through: Set<string>): string {
		for (;;) {
			const n = this.node(t);
			if (!n || !through.has(n.opType!)) return t;
			if (n.opType === 'Concat') {
				const own = n.input!.filter((i) => i && !this.g.graphInputs.has(i));
				if (own.length !== 1) return t;
				t = own[0];
			} else t = n.input![0];
		}
	}

	isConst(t: string): boolean {
		return this.g.isConstant(t);
	}

	/** A constant's values as numbers (floats or integers), or null where `t` is not one this can read. */
	numbers(t: string): number[] | null {
		const init = this.g.initializers.get(t);
		if (init) return this.tensorNumbers(init);
		const n = this.node(t);
		if (!n) return null;
		if (n.opType === 'Constant') {
			const a = n.attribute?.[0];
			if (!a) return null;
			if (a.name === 'value' && a.t) return this.tensorNumbers(a.t);
			if (a.name === 'value_float') return [a.f ?? 0];
			if (a.name === 'value_floats') return (a.floats ?? []).map(Number);
			if (a.name === 'value_int') return [Number(a.i ?? 0)];
			if (a.name === 'value_ints') return (a.ints ?? []).map(Number);
			return null;
		}
		if (CASTS.has(n.opType!) || n.opType === 'Reshape' || n.opType === 'Unsqueeze' || n.opType === 'Squeeze')
			return this.numbers(n.input![0]);
		return null;
	}

	scalar(t: string): number | null {
		const v = this.numbers(t);
		return v && v.length === 1 ? v[0] : null;
	}

	private tensorNumbers(t: TensorProto): number[] | null {
		const bytes = initializerBytes(t, this.files);
		const dt = t.dataType;
		if (!bytes) {
			if (dt === 7 && t.int64Data?.length) return t.int64Data.map(Number);
			if (dt === 6 && t.int32Data?.length) return t.int32Data.map(Number);
			if (dt === 11 && t.doubleData?.length) return t.doubleData.map(Number);
			return null;
		}
		const b = new Uint8Array(bytes); // a copy: aligned, and not a view into a weight file (Node's Buffer.slice is a view)
		if (dt === 1) return Array.from(new Float32Array(b.buffer));
		if (dt === 10) return Array.from(new Uint16Array(b.buffer), fromHalf);
		if (dt === 11) return Array.from(new Float64Array(b.buffer));
		if (dt === 7) return Array.from(new BigInt64Array(b.buffer), Number);
		if (dt === 6) return Array.from(new Int32Array(b.buffer));
		return null;
	}

	/** A float weight (fp32 or fp16) as fp32, copied out of its file; `what` names it in a refusal. */
	floats(name: string, what: string): { data: Float32Array; dims: number[] } {
		const t = this.g.initializers.get(name);
		if (!t) throw new Refusal(`${what} is not a stored weight (it is computed in the graph)`);
		const dims = (t.dims ?? []).map(Number);
		const n = dims.reduce((a, d) => a * d, 1);
		if (t.dataType !== 1 && t.dataType !== 10) throw new Refusal(`${what} is stored as ONNX type ${t.dataType}, not fp32 or fp16`);
		const bytes = initializerBytes(t, this.files);
		if (!bytes) throw new Refusal(`the bytes of ${what} ("${name}") are not in the weight files given`);
		const b = new Uint8Array(bytes);
		const data = t.dataType === 1 ? new Float32Array(b.buffer, 0, n) : Float32Array.from(new Uint16Array(b.buffer, 0, n), fromHalf);
		if (data.length !== n) throw new Refusal(`${what} has ${data.length} values for dims [${dims.join(', ')}]`);
		return { data, dims };
	}

	/** The product `t = MatMul(x, W)` (or Gemm) with a stored weight, or null. */
	projection(t: string): { x: string; weight: string; node: NodeProto } | null {
		const n = this.node(t);
		if (!n || !(n.opType === 'MatMul' || n.opType === 'Gemm') || n.input!.length > 2) return null;
		if (n.opType === 'Gemm' && n.attribute?.some((a) => (a.name === 'transA' || a.name === 'transB') && Number(a.i) === 1)) return null;
		if (!this.g.initializers.has(n.input![1]) || this.isConst(n.input![0])) return null;
		return { x: n.input![0], weight: n.input![1], node: n };
	}

	/**
	 * The affine map that writes `t`: MatMul or Gemm by a stored weight [in, out], with Gemm's bias,
	 * through the Reshapes around GPT-2's Conv1D, and one slice of a Split of its output (GPT-2's fused
	 * c_attn); null where `t` is not one. `x` is what it reads (back through reshapes).
	 */
	linear(t: string, what: string): Linear | null {
		// Each weight is read (and copied out of its file) once, however often the trace asks.
		if (!this.linears.has(t)) this.linears.set(t, this.readLinear(t, what));
		return this.linears.get(t)!;
	}

	private linears = new Map<string, Linear | null>();

	private readLinear(t: string, what: string): Linear | null {
		t = this.back(t, RESHAPE_ONLY);
		const n = this.node(t);
		if (n?.opType === 'Split') {
			const whole = this.linear(n.input![0], what);
			if (!whole) return null;
			const slot = n.output!.indexOf(t);
			const out = whole.dims[1];
			const sizes = n.input![1] ? this.numbers(n.input![1]) : null;
			const parts = sizes ?? new Array<number>(n.output!.length).fill(out / n.output!.length);
			const axis = Number(n.attribute?.find((a) => a.name === 'axis')?.i ?? 0);
			if (parts.reduce((a, b) => a + b, 0) !== out || (axis !== -1 && axis !== 2 && axis !== 1))
				throw new Refusal(`${what}: a Split of a projection that is not along its output features`);
			const start = parts.slice(0, slot).reduce((a, b) => a + b, 0);
			const width = parts[slot];
			const [rows] = whole.dims;
			const w = new Float32Array(rows * width);
			for (let i = 0; i < rows; i++) w.set(whole.w.subarray(i * out + start, i * out + start + width), i * width);
			return {
				x: whole.x,
				w,
				dims: [rows, width],
				b: whole.b?.slice(start, start + width),
				weight: `${whole.weight}[${start}:${start + width}]`
			};
		}
		if (n?.opType === 'Add') {
			// MatMul then Add of a stored bias (older exports' Conv1D, GPT-NeoX's Linear).
			const k = n.input!.findIndex((x) => this.g.initializers.has(x));
			const inner = k >= 0 ? this.readLinear(n.input![1 - k], what) : null;
			if (!inner || inner.b) return null;
			const b = this.floats(n.input![k], `${what}'s bias`).data;
			return b.length === inner.dims[1] ? { ...inner, b } : null;
		}
		if (!n || !(n.opType === 'MatMul' || n.opType === 'Gemm')) return null;
		if (n.opType === 'Gemm' && n.attribute?.some((a) => (a.name === 'transA' || a.name === 'transB') && Number(a.i) === 1)) return null;
		if (!this.g.initializers.has(n.input![1]) || this.isConst(n.input![0])) return null;
		const { data, dims } = this.floats(n.input![1], what);
		if (dims.length !== 2) return null;
		let b: Float32Array | undefined;
		if (n.input![2]) {
			b = this.floats(n.input![2], `${what}'s bias`).data;
			if (b.length !== dims[1]) throw new Refusal(`${what}'s bias is not one value per output`);
		}
		return { x: this.back(n.input![0], RESHAPE_ONLY), w: data, dims: [dims[0], dims[1]], b, weight: n.input![1] };
	}

	/** A LayerNorm or RMSNorm at `y`, written out or as LayerNormalization: weight, β (LayerNorm), eps, input. */
	norm(y: string, what: string): { weight: Float32Array; bias?: Float32Array; eps: number; input: string; layerNorm: boolean } {
		const n = this.node(y);
		if (n?.opType === 'LayerNormalization') {
			const eps = n.attribute?.find((a) => a.name === 'epsilon')?.f ?? 1e-5;
			const weight = this.floats(n.input![1], `the weight of ${what}`).data;
			const bias = n.input![2] ? this.floats(n.input![2], `the bias of ${what}`).data : undefined;
			return { weight, bias, eps, input: this.back(n.input![0], CASTS), layerNorm: true };
		}
		if (n?.opType === 'Add') {
			// LayerNorm: ((x − mean x) / √(var + eps)) · γ + β.
			const bSlot = n.input!.findIndex((t) => this.g.initializers.has(t));
			if (bSlot >= 0) {
				const bias = this.floats(n.input![bSlot], `the bias of ${what}`).data;
				const ln = this.layerNorm(n.input![1 - bSlot], what);
				if (ln) return { ...ln, bias, layerNorm: true };
			}
		}
		const ln = this.layerNorm(y, what);
		if (ln) return { ...ln, layerNorm: true };
		return { ...this.rmsNorm(y, what), layerNorm: false };
	}

	/** γ ⊙ (x − mean x) / √(mean((x − mean x)²) + eps), or null where `y` is not that. */
	private layerNorm(y: string, what: string): { weight: Float32Array; eps: number; input: string } | null {
		const mul = this.node(y);
		if (mul?.opType !== 'Mul') return null;
		const wSlot = mul.input!.findIndex((t) => this.g.initializers.has(t));
		if (wSlot < 0) return null;
		const div = this.node(this.back(mul.input![1 - wSlot], CASTS));
		if (div?.opType !== 'Div') return null;
		const sub = this.node(div.input![0]);
		if (sub?.opType !== 'Sub') return null;
		const mean = this.node(sub.input![1]);
		if (mean?.opType !== 'ReduceMean' || mean.input![0] !== sub.input![0]) return null;
		const sqrt = this.node(div.input![1]);
		const add = sqrt?.opType === 'Sqrt' ? this.node(sqrt.input![0]) : undefined;
		const epsSlot = add?.opType === 'Add' ? add.input!.findIndex((t) => this.scalar(t) !== null) : -1;
		if (!add || epsSlot < 0) throw new Refusal(`${what} subtracts the mean but is not divided by √(var + eps)`);
		const v = this.node(add.input![1 - epsSlot]);
		const sq = v?.opType === 'ReduceMean' ? this.node(v.input![0]) : undefined;
		if (!(sq?.opType === 'Pow' && this.scalar(sq.input![1]) === 2 && sq.input![0] === div.input![0]))
			throw new Refusal(`${what}'s variance is not the mean of the centred square`);
		return {
			weight: this.floats(mul.input![wSlot], `the weight of ${what}`).data,
			eps: this.scalar(add.input![epsSlot])!,
			input: this.back(sub.input![0], CASTS)
		};
	}

	/** The written-out RMSNorm whose output is `y`: its weight, eps and input (before any Cast), or why not. */
	rmsNorm(y: string, what: string): { weight: Float32Array; eps: number; input: string } {
		const fail = (why: string) => new Refusal(`${what} is not an RMSNorm Loupe recognises (${why})`);
		const mul = this.node(y);
		if (mul?.opType !== 'Mul') throw fail(`its output is written by ${mul?.opType ?? 'no node'}, not a Mul by its weight`);
		const wSlot = mul.input!.findIndex((t) => this.g.initializers.has(t));
		if (wSlot < 0) throw fail('neither operand of its last Mul is a stored weight');
		const weight = this.floats(mul.input![wSlot], `the weight of ${what}`).data;
		const scaled = this.back(mul.input![1 - wSlot], CASTS);
		const s = this.node(scaled);
		let x: string | undefined;
		let root: string | undefined;
		if (s?.opType === 'Mul') {
			// x · inv, either order: inv is the operand computed by Div(1, ·) or Reciprocal.
			for (const k of [0, 1]) {
				const inv = this.node(s.input![k]);
				if (inv?.opType === 'Reciprocal') root = inv.input![0];
				else if (inv?.opType === 'Div' && this.scalar(inv.input![0]) === 1) root = inv.input![1];
				if (root) {
					x = s.input![1 - k];
					break;
				}
			}
		} else if (s?.opType === 'Div') ((x = s.input![0]), (root = s.input![1]));
		if (!x || !root) throw fail(`no x · 1/√(…) before the weight (found ${s?.opType ?? 'nothing'})`);
		const sqrt = this.node(root);
		if (sqrt?.opType !== 'Sqrt') throw fail(`the denominator is ${sqrt?.opType ?? 'no node'}, not a Sqrt`);
		const add = this.node(sqrt.input![0]);
		if (add?.opType !== 'Add') throw fail('no Add of eps under the Sqrt');
		const epsSlot = add.input!.findIndex((t) => this.scalar(t) !== null);
		if (epsSlot < 0) throw fail('the Add under the Sqrt has no constant eps');
		const eps = this.scalar(add.input![epsSlot])!;
		const mean = this.node(add.input![1 - epsSlot]);
		if (mean?.opType !== 'ReduceMean') throw fail('no ReduceMean of x² under the Sqrt');
		const sq = this.node(mean.input![0]);
		const base = this.back(x, CASTS);
		const squares =
			(sq?.opType === 'Pow' && this.scalar(sq.input![1]) === 2 && this.back(sq.input![0], CASTS) === base) ||
			(sq?.opType === 'Mul' && sq.input![0] === sq.input![1] && this.back(sq.input![0], CASTS) === base);
		if (!squares) throw fail('the mean is not of the square of the tensor it scales');
		return { weight, eps, input: base };
	}
}

/** [rows, cols] row-major → [cols, rows]: an ONNX MatMul weight [in, out] in llama2.c's [out, in]. */
export function transposed(w: Float32Array, rows: number, cols: number): Float32Array {
	const out = new Float32Array(rows * cols);
	for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = w[r * cols + c];
	return out;
}

/**
 * Cuts an exported decoder into a chain of segments at hook points: residual-stream boundaries
 * (`blocks.L.hook_resid_pre/post`) and the hooks inside the layers (attn_out, mlp_in, mlp_out).
 *
 * The cut tensors are put in the graph's topological order (a cut at `blocks.1.hook_mlp_in` sits
 * between resid_pre 1 and resid_post 1; in a parallel block whichever of attn_out and mlp_in the
 * graph computes first). Every node gets a segment number: the number of cut tensors it
 * (transitively) reads, as the index of the last one plus one. Segment j holds the nodes numbered j
 * and writes cut j under its hook name, so the engine can read and edit it in between; any later
 * segment that reads a cut tensor reads it under its hook name too (the edited one: a residual add
 * after an attn_out cut reads both the resid_pre cut and the attn_out cut). Work that reads no cut
 * at all (attention masks, position tables, shapes of the token input) is copied into each segment
 * that needs it; a tensor computed after a cut and read beyond the next one is carried across as an
 * extra output/input, and so is a cut computed before the segment it ends (a parallel block's
 * attn_out when mlp_in is cut too). Weights stay where they were: inline initializers are
 * referenced, external-data ones keep pointing at the same sidecar file.
 */
import { largestPackedFirst } from './prepack-order';
import { DataType, GraphIndex, encodeModel, type ModelProto, type NodeProto, type ValueInfoProto } from './graph';
import { TraceError, type ResidualTrace } from './trace-residual';
import { allHookNames, boundaryName, canonicalHook, hookBoundary, isResidHook, layersBetween, type HookName } from '../hooks';
import type { SegmentSpec } from '../segments';

export interface CutSegment extends SegmentSpec {
	/** Tensors computed in an earlier segment and carried here (besides the residual). */
	carriedIn: string[];
	nodeCount: number;
}

/** The residual boundaries among these hooks (hooks inside the layers throw: use cutAtHooks). */
export function boundariesOf(hooks: HookName[], nLayers: number): number[] {
	return [...new Set(hooks.map((h) => hookBoundary(h, nLayers)))].sort((a, b) => a - b);
}

/** Every hook the trace offers: the residual ones and those found inside the layers, in name order. */
export function offeredHooks(trace: ResidualTrace): HookName[] {
	const out: HookName[] = [];
	for (const name of allHookNames(trace.nLayers)) {
		out.push(name);
		if (name.endsWith('resid_pre')) {
			const l = name.split('.')[1];
			for (const kind of ['attn_out', 'mlp_in', 'mlp_out'])
				if (trace.sites[`blocks.${l}.hook_${kind}`]) out.push(`blocks.${l}.hook_${kind}`);
		}
	}
	return out;
}

/** Residual boundaries only, as numbers (the engine's form); the same as cutting at their hook names. */
export function cutAtBoundaries(original: GraphIndex, trace: ResidualTrace, cuts: number[]): CutSegment[] {
	return cutAtHooks(
		original,
		trace,
		cuts.map((b) => boundaryName(b, trace.nLayers))
	);
}

/** The tensor behind a hook in the unmodified graph, or throws with what the export offers. */
export function hookTensor(trace: ResidualTrace, hook: HookName): string {
	const name = canonicalHook(hook, trace.nLayers);
	if (isResidHook(name)) return trace.boundaries[hookBoundary(name, trace.nLayers)].tensor;
	const site = trace.sites[name];
	if (!site) {
		const why = reasonFor(trace, name);
		throw new TraceError(
			`This export has no tensor Loupe can cut at for ${hook}${why ? ` (${why})` : ''}; ` +
				`pick one of the hooks it offers: ${offeredHooks(trace).join(', ')}.`
		);
	}
	return site.tensor;
}

function reasonFor(trace: ResidualTrace, hook: HookName): string {
	for (const w of trace.warnings) {
		const at = w.indexOf(`${hook}: `);
		if (at >= 0)
			return w
				.slice(at + hook.length + 2)
				.split(';')[0]
				.replace(/\.$/, '');
	}
	return '';
}

/** Cuts at any hooks the trace offers, in graph order; names are canonical (resid_post L → resid_pre L+1). */
export function cutAtHooks(original: GraphIndex, trace: ResidualTrace, hooks: HookName[]): CutSegment[] {
	const { nLayers } = trace;
	const { g, cuts } = planCuts(original, trace, hooks);
	const cutIndex = new Map(cuts.map((c, k) => [c.tensor, k]));

	// Segment number of every tensor and node, in topological order.
	const segOfTensor = new Map<string, number>();
	const segOfNode = new Map<NodeProto, number>();
	const readSeg = (t: string) => (cutIndex.has(t) ? cutIndex.get(t)! + 1 : (segOfTensor.get(t) ?? 0));
	for (const node of g.nodes) {
		let s = 0;
		for (const t of node.input!) if (t) s = Math.max(s, readSeg(t));
		segOfNode.set(node, s);
		for (const o of node.output!) if (o) segOfTensor.set(o, s);
	}
	// Tensors computed after a cut (segment ≥ 1) and read in a later segment, other than the cuts.
	const carried = new Set<string>();
	for (const node of g.nodes)
		for (const t of node.input!)
			if (t && !cutIndex.has(t) && (segOfTensor.get(t) ?? 0) > 0 && segOfNode.get(node)! > segOfTensor.get(t)!) carried.add(t);
	// A cut computed in an earlier segment than the one it ends (topological order allows it only
	// across parallel branches) travels there raw; its readers all come after it.
	const carriedCut = new Map<number, number>();
	cuts.forEach((c, k) => {
		const p = segOfTensor.get(c.tensor) ?? 0;
		if (p > 0 && p < k) carriedCut.set(k, p);
	});

	const nSeg = cuts.length + 1;
	const segments: CutSegment[] = [];
	for (let j = 0; j < nSeg; j++) {
		const wanted: string[] = [];
		for (const name of g.graphOutputs.keys()) if ((segOfTensor.get(name) ?? 0) === j) wanted.push(name);
		const carriedOut = [...carried].filter((t) => segOfTensor.get(t) === j);
		for (const [k, p] of carriedCut) if (p === j) carriedOut.push(cuts[k].tensor);
		wanted.push(...carriedOut);
		if (j < nSeg - 1) wanted.push(cuts[j].tensor);

		const stop = new Set<string>([...g.graphInputs.keys(), ...g.initializers.keys()]);
		for (const c of cuts.slice(0, j)) stop.add(c.tensor);
		const carriedIn = [...carried].filter((t) => segOfTensor.get(t)! < j);
		if (carriedCut.has(j)) carriedIn.push(cuts[j].tensor);
		for (const t of carriedIn) stop.add(t);
		const nodes = [...g.ancestors(wanted, stop)].sort((a, b) => g.order.get(a)! - g.order.get(b)!);
		for (const n of nodes) {
			const s = segOfNode.get(n)!;
			if (s !== j && s !== 0) throw new TraceError(`Cutting here would need "${n.output![0]}" from segment ${s} inside segment ${j}.`);
		}
		const read = new Set(nodes.flatMap((n) => n.input!.filter(Boolean)));
		// Earlier cuts this segment reads, by hook name; the one just before it always.
		const cutsIn = cuts.slice(0, j).filter((c, k) => k === j - 1 || read.has(c.tensor));
		const usedCarried = carriedIn.filter((t) => read.has(t) || (carriedCut.has(j) && t === cuts[j].tensor));
		const residualIn = j > 0 ? cuts[j - 1].hook : undefined;
		const residualOut = j < nSeg - 1 ? cuts[j].hook : undefined;
		segments.push(
			buildSegment(g, trace, {
				index: j,
				layers: layersBetween(residualIn, residualOut, nLayers),
				nodes,
				residualIn,
				cutsIn,
				residualOut: j < nSeg - 1 ? cuts[j] : undefined,
				graphOutputs: wanted.filter((t) => g.graphOutputs.has(t)),
				carriedIn: usedCarried,
				carriedOut,
				cutTensors: new Set(cutIndex.keys())
			})
		);
	}
	return segments;
}

interface Cut {
	hook: HookName;
	tensor: string;
}

/**
 * The graph to cut and its cut tensors in topological order: bias splits written where a hook
 * asks for one, fused norms unfused at cut sums (which renames the normalised tensor a later
 * mlp_in hook reads), one cut per tensor.
 */
function planCuts(original: GraphIndex, trace: ResidualTrace, hooks: HookName[]): { g: GraphIndex; cuts: Cut[] } {
	const names = [...new Set(hooks.map((h) => canonicalHook(h, trace.nLayers)))];
	const wanted = names.map((hook) => ({ hook, tensor: hookTensor(trace, hook) }));
	const splits = names.flatMap((h) => (trace.sites[h]?.split ? [{ ...trace.sites[h].split!, tensor: trace.sites[h].tensor }] : []));
	const split = splits.length ? splitBiases(original, splits) : original;
	const { graph: g, renamed } = unfuse(
		split,
		wanted.map((c) => c.tensor)
	);
	const byTensor = new Map<string, Cut>();
	for (const c of wanted) {
		const tensor = renamed.get(c.tensor) ?? c.tensor;
		if (!byTensor.has(tensor)) byTensor.set(tensor, { hook: c.hook, tensor });
	}
	const position = (t: string) => {
		const p = g.producer.get(t);
		if (!p) throw new TraceError(`The cut tensor "${t}" is not computed by any node of the graph.`);
		return p.index;
	};
	return { g, cuts: [...byTensor.values()].sort((a, b) => position(a.tensor) - position(b.tensor)) };
}

/**
 * Where a fused add hides the output projection's bias (Skip*LayerNormalization's bias input),
 * writes `operand + bias` as its own tensor and feeds the fused op that instead, without the bias:
 * the same sum, with attn_out / mlp_out now a tensor a cut can edit.
 */
function splitBiases(
	g: GraphIndex,
	splits: { sum: string; slot: number; operand: string; bias: string; biasSlot: number; tensor: string }[]
): GraphIndex {
	const replaced = new Map<NodeProto, NodeProto>();
	const added: NodeProto[] = [];
	for (const s of splits) {
		const node = g.producer.get(s.sum)?.node;
		if (!node) throw new TraceError(`No node writes "${s.sum}", where the bias of ${s.tensor} should be split out.`);
		const copy = replaced.get(node) ?? { ...node, input: [...node.input!] };
		copy.input![s.slot] = s.tensor;
		copy.input = copy.input!.slice(0, s.biasSlot);
		replaced.set(node, copy);
		added.push({ name: `${s.tensor}/loupe_bias`, opType: 'Add', input: [s.operand, s.bias], output: [s.tensor] });
	}
	const model: ModelProto = { ...g.model, graph: { ...g.model.graph!, node: [...g.nodes.map((n) => replaced.get(n) ?? n), ...added] } };
	return new GraphIndex(model);
}

interface SegmentPlan {
	index: number;
	layers: [number, number];
	nodes: NodeProto[];
	residualIn?: HookName;
	/** Earlier cuts this segment reads (each under its hook name). */
	cutsIn: Cut[];
	residualOut?: Cut;
	graphOutputs: string[];
	carriedIn: string[];
	carriedOut: string[];
	cutTensors: Set<string>;
}

function buildSegment(g: GraphIndex, trace: ResidualTrace, p: SegmentPlan): CutSegment {
	const residualType = g.elemType(trace.boundaries[0].tensor) ?? g.initializers.get(trace.embedding)?.dataType ?? DataType.FLOAT;
	const typed = (name: string, elemType: number | undefined): ValueInfoProto => {
		if (!elemType) throw new TraceError(`The export does not say the type of "${name}", which must cross a cut.`);
		return { name, type: { tensorType: { elemType } } };
	};
	const nodes: NodeProto[] = [...p.nodes];
	const read = new Set(nodes.flatMap((n) => n.input!.filter(Boolean)));
	const inputs: ValueInfoProto[] = [...g.graphInputs.values()].filter((v) => read.has(v.name!));
	for (const c of p.cutsIn) {
		inputs.push(typed(c.hook, g.elemType(c.tensor) ?? residualType));
		nodes.unshift({ name: `loupe/${c.hook}/in`, opType: 'Identity', input: [c.hook], output: [c.tensor] });
	}
	// A cut tensor carried raw has the residual's type (every hook does); other carried tensors
	// (a residual add's sum read again after an MLP cut) get theirs from the graph.
	const typeOf = (t: string) => (p.cutTensors.has(t) ? (g.elemType(t) ?? residualType) : inferElemType(g, t));
	for (const t of p.carriedIn) inputs.push(typed(t, typeOf(t)));
	const outputs: ValueInfoProto[] = p.graphOutputs.map((t) => g.graphOutputs.get(t)!);
	for (const t of p.carriedOut) outputs.push(typed(t, typeOf(t)));
	if (p.residualOut) {
		outputs.push(typed(p.residualOut.hook, g.elemType(p.residualOut.tensor) ?? residualType));
		nodes.push({
			name: `loupe/${p.residualOut.hook}/out`,
			opType: 'Identity',
			input: [p.residualOut.tensor],
			output: [p.residualOut.hook]
		});
	}
	const src = g.model;
	const bytes = encodeModel({
		irVersion: src.irVersion,
		opsetImport: src.opsetImport,
		producerName: 'loupe graph surgery',
		functions: src.functions,
		graph: {
			name: `${src.graph!.name ?? 'decoder'} segment ${p.index}`,
			node: largestPackedFirst(nodes, g),
			initializer: [...g.initializers.values()].filter((t) => read.has(t.name!)),
			input: inputs,
			output: outputs,
			valueInfo: (src.graph!.valueInfo ?? []).filter((v) => read.has(v.name!))
		}
	});
	return {
		index: p.index,
		layers: p.layers,
		residualIn: p.residualIn,
		residualOut: p.residualOut?.hook,
		inputNames: inputs.map((v) => v.name!),
		outputNames: outputs.map((v) => v.name!),
		carriedIn: p.carriedIn,
		nodeCount: nodes.length,
		bytes
	};
}

const BOOL_OPS = new Set(['Equal', 'Less', 'LessOrEqual', 'Greater', 'GreaterOrEqual', 'Not', 'And', 'Or', 'Xor', 'IsNaN', 'IsInf']);
const INT64_OPS = new Set(['Shape', 'Size', 'NonZero', 'ArgMax', 'ArgMin']);

/**
 * A tensor's element type where the export does not say it (torch exports carry no value_info):
 * from the op that writes it — a Cast's `to`, int64 for shapes, bool for comparisons, else the type
 * of the data input it passes on.
 */
export function inferElemType(g: GraphIndex, t: string, seen = new Set<string>()): number | undefined {
	const known = g.elemType(t);
	if (known || seen.has(t)) return known;
	seen.add(t);
	const p = g.producer.get(t);
	if (!p) return undefined;
	const n = p.node;
	const op = n.opType!;
	const attr = (name: string) => n.attribute?.find((a) => a.name === name);
	if (op === 'Cast') return Number(attr('to')?.i ?? 0) || undefined;
	if (op === 'Constant' || op === 'ConstantOfShape') return attr('value')?.t?.dataType ?? DataType.FLOAT;
	if (INT64_OPS.has(op)) return DataType.INT64;
	if (BOOL_OPS.has(op)) return DataType.BOOL;
	if (op === 'Where') return inferElemType(g, n.input![1], seen) ?? inferElemType(g, n.input![2], seen);
	// Float data wins over integer indices and ids (Gather, fused embeddings and attention).
	const types = n
		.input!.filter(Boolean)
		.map((i) => inferElemType(g, i, seen))
		.filter((e): e is number => !!e);
	return types.find((e) => FLOAT_TYPES.has(e)) ?? types[0];
}

const FLOAT_TYPES = new Set<number>([DataType.FLOAT, DataType.FLOAT16, DataType.BFLOAT16, DataType.DOUBLE]);

/**
 * A fused norm (SkipLayerNormalization, SkipSimplifiedLayerNormalization, EmbedLayerNormalization)
 * writes both the residual sum and its normalised value, which the next branch reads. Where the
 * sum is a cut, the next branch must see the edited residual: its readers get a plain norm of the
 * cut tensor instead (same weights and epsilon), which lands in the next segment.
 */
export function unfuseAtCuts(g: GraphIndex, cutTensors: string[]): GraphIndex {
	return unfuse(g, cutTensors).graph;
}

/** unfuseAtCuts, also saying which normalised tensors were replaced by their re-normalised copy. */
function unfuse(g: GraphIndex, cutTensors: string[]): { graph: GraphIndex; renamed: Map<string, string> } {
	const renamed = new Map<string, string>();
	const edits: { node: NodeProto; sum: string }[] = [];
	for (const t of cutTensors) {
		const p = g.producer.get(t);
		if (!p) continue;
		const op = p.node.opType!;
		if ((op === 'SkipLayerNormalization' || op === 'SkipSimplifiedLayerNormalization') && p.slot === 3)
			edits.push({ node: p.node, sum: t });
		if (op === 'EmbedLayerNormalization' && p.slot === 2) edits.push({ node: p.node, sum: t });
	}
	if (!edits.length) return { graph: g, renamed };
	const model = { ...g.model, graph: { ...g.model.graph!, node: [...g.nodes], output: g.model.graph!.output } };
	for (const { node, sum } of edits) {
		const normed = node.output![0];
		const renormed = `${normed}/loupe_renorm`;
		renamed.set(normed, renormed);
		const epsilon = node.attribute?.find((a) => a.name === 'epsilon');
		const attribute = [{ name: 'axis', type: 2, i: -1 }, ...(epsilon ? [epsilon] : [])];
		const inputs =
			node.opType === 'SkipLayerNormalization'
				? [sum, node.input![2], ...(node.input![3] ? [node.input![3]] : [])]
				: node.opType === 'SkipSimplifiedLayerNormalization'
					? [sum, node.input![2]]
					: [sum, node.input![5], node.input![6]];
		const opType = node.opType === 'SkipSimplifiedLayerNormalization' ? 'SimplifiedLayerNormalization' : 'LayerNormalization';
		model.graph.node = model.graph.node.map((n) =>
			n.input!.includes(normed) ? { ...n, input: n.input!.map((i) => (i === normed ? renormed : i)) } : n
		);
		model.graph.node.push({ name: `${node.name}/loupe_renorm`, opType, input: inputs, output: [renormed], attribute });
		if (g.graphOutputs.has(normed))
			model.graph.node.push({ name: `${normed}/loupe_alias`, opType: 'Identity', input: [renormed], output: [normed] });
	}
	return { graph: new GraphIndex(model), renamed };
}

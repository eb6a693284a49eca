/**
 * Cuts an exported decoder into a chain of segments at residual-stream boundaries.
 *
 * Every node gets a segment number: the number of cut tensors it (transitively) reads. Segment j
 * holds the nodes numbered j, reads cut j-1 as a graph input named by its hook
 * (`blocks.L.hook_resid_pre`) and writes cut j under the next hook's name, so the engine can read
 * and edit the residual in between. Work that reads no cut at all (attention masks, position
 * tables, shapes of the token input) is copied into each segment that needs it; a tensor computed
 * after a cut and read beyond the next one is carried across as an extra output/input.
 * Weights stay where they were: inline initializers are referenced, external-data ones keep
 * pointing at the same sidecar file.
 */
import { DataType, GraphIndex, encodeModel, type NodeProto, type ValueInfoProto } from './graph';
import { TraceError, type ResidualTrace } from './trace-residual';
import { boundaryName, hookBoundary, type HookName } from '../hooks';
import type { SegmentSpec } from '../segments';

export interface CutSegment extends SegmentSpec {
	/** Tensors computed in an earlier segment and carried here (besides the residual). */
	carriedIn: string[];
	nodeCount: number;
}

export function boundariesOf(hooks: HookName[], nLayers: number): number[] {
	return [...new Set(hooks.map((h) => hookBoundary(h, nLayers)))].sort((a, b) => a - b);
}

export function cutAtBoundaries(original: GraphIndex, trace: ResidualTrace, cuts: number[]): CutSegment[] {
	const { nLayers } = trace;
	const cutTensors = cuts.map((b) => trace.boundaries[b].tensor);
	const g = unfuseAtCuts(original, cutTensors);
	const cutIndex = new Map(cutTensors.map((t, k) => [t, k]));

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

	const nSeg = cuts.length + 1;
	const segments: CutSegment[] = [];
	for (let j = 0; j < nSeg; j++) {
		const residualIn = j > 0 ? boundaryName(cuts[j - 1], nLayers) : undefined;
		const residualOut = j < nSeg - 1 ? boundaryName(cuts[j], nLayers) : undefined;
		const wanted: string[] = [];
		for (const name of g.graphOutputs.keys()) if ((segOfTensor.get(name) ?? 0) === j) wanted.push(name);
		const carriedOut = [...carried].filter((t) => segOfTensor.get(t) === j);
		wanted.push(...carriedOut);
		if (j < nSeg - 1) wanted.push(cutTensors[j]);

		const stop = new Set<string>([...g.graphInputs.keys(), ...g.initializers.keys()]);
		if (j > 0) stop.add(cutTensors[j - 1]);
		const carriedIn = [...carried].filter((t) => segOfTensor.get(t)! < j);
		for (const t of carriedIn) stop.add(t);
		const nodes = [...g.ancestors(wanted, stop)].sort((a, b) => g.order.get(a)! - g.order.get(b)!);
		for (const n of nodes) {
			const s = segOfNode.get(n)!;
			if (s !== j && s !== 0)
				throw new TraceError(`Cutting here would need "${n.output![0]}" from segment ${s} inside segment ${j}.`);
		}
		const read = new Set(nodes.flatMap((n) => n.input!.filter(Boolean)));
		const usedCarried = carriedIn.filter((t) => read.has(t));
		segments.push(buildSegment(g, trace, {
			index: j,
			layers: [j === 0 ? 0 : cuts[j - 1], j < nSeg - 1 ? cuts[j] : nLayers],
			nodes,
			residualIn: j > 0 ? { tensor: cutTensors[j - 1], hook: residualIn! } : undefined,
			residualOut: j < nSeg - 1 ? { tensor: cutTensors[j], hook: residualOut! } : undefined,
			graphOutputs: wanted.filter((t) => g.graphOutputs.has(t)),
			carriedIn: usedCarried,
			carriedOut
		}));
	}
	return segments;
}

interface SegmentPlan {
	index: number;
	layers: [number, number];
	nodes: NodeProto[];
	residualIn?: { tensor: string; hook: string };
	residualOut?: { tensor: string; hook: string };
	graphOutputs: string[];
	carriedIn: string[];
	carriedOut: string[];
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
	if (p.residualIn) {
		inputs.push(typed(p.residualIn.hook, residualType));
		nodes.unshift({ name: `loupe/${p.residualIn.hook}/in`, opType: 'Identity', input: [p.residualIn.hook], output: [p.residualIn.tensor] });
	}
	for (const t of p.carriedIn) inputs.push(typed(t, g.elemType(t)));
	const outputs: ValueInfoProto[] = p.graphOutputs.map((t) => g.graphOutputs.get(t)!);
	for (const t of p.carriedOut) outputs.push(typed(t, g.elemType(t)));
	if (p.residualOut) {
		outputs.push(typed(p.residualOut.hook, residualType));
		nodes.push({ name: `loupe/${p.residualOut.hook}/out`, opType: 'Identity', input: [p.residualOut.tensor], output: [p.residualOut.hook] });
	}
	const src = g.model;
	const bytes = encodeModel({
		irVersion: src.irVersion,
		opsetImport: src.opsetImport,
		producerName: 'loupe graph surgery',
		functions: src.functions,
		graph: {
			name: `${src.graph!.name ?? 'decoder'} segment ${p.index}`,
			node: nodes,
			initializer: [...g.initializers.values()].filter((t) => read.has(t.name!)),
			input: inputs,
			output: outputs,
			valueInfo: (src.graph!.valueInfo ?? []).filter((v) => read.has(v.name!))
		}
	});
	return {
		index: p.index,
		layers: p.layers,
		residualIn: p.residualIn?.hook,
		residualOut: p.residualOut?.hook,
		inputNames: inputs.map((v) => v.name!),
		outputNames: outputs.map((v) => v.name!),
		carriedIn: p.carriedIn,
		nodeCount: nodes.length,
		bytes
	};
}

/**
 * A fused norm (SkipLayerNormalization, SkipSimplifiedLayerNormalization, EmbedLayerNormalization)
 * writes both the residual sum and its normalised value, which the next branch reads. Where the
 * sum is a cut, the next branch must see the edited residual: its readers get a plain norm of the
 * cut tensor instead (same weights and epsilon), which lands in the next segment.
 */
export function unfuseAtCuts(g: GraphIndex, cutTensors: string[]): GraphIndex {
	const edits: { node: NodeProto; sum: string }[] = [];
	for (const t of cutTensors) {
		const p = g.producer.get(t);
		if (!p) continue;
		const op = p.node.opType!;
		if ((op === 'SkipLayerNormalization' || op === 'SkipSimplifiedLayerNormalization') && p.slot === 3) edits.push({ node: p.node, sum: t });
		if (op === 'EmbedLayerNormalization' && p.slot === 2) edits.push({ node: p.node, sum: t });
	}
	if (!edits.length) return g;
	const model = { ...g.model, graph: { ...g.model.graph!, node: [...g.nodes], output: g.model.graph!.output } };
	for (const { node, sum } of edits) {
		const normed = node.output![0];
		const renormed = `${normed}/loupe_renorm`;
		const epsilon = node.attribute?.find((a) => a.name === 'epsilon');
		const attribute = [{ name: 'axis', type: 2, i: -1 }, ...(epsilon ? [epsilon] : [])];
		const inputs =
			node.opType === 'SkipLayerNormalization' ? [sum, node.input![2], ...(node.input![3] ? [node.input![3]] : [])]
			: node.opType === 'SkipSimplifiedLayerNormalization' ? [sum, node.input![2]]
			: [sum, node.input![5], node.input![6]];
		const opType = node.opType === 'SkipSimplifiedLayerNormalization' ? 'SimplifiedLayerNormalization' : 'LayerNormalization';
		model.graph.node = model.graph.node.map((n) =>
			n.input!.includes(normed) ? { ...n, input: n.input!.map((i) => (i === normed ? renormed : i)) } : n
		);
		model.graph.node.push({ name: `${node.name}/loupe_renorm`, opType, input: inputs, output: [renormed], attribute });
		if (g.graphOutputs.has(normed)) model.graph.node.push({ name: `${normed}/loupe_alias`, opType: 'Identity', input: [renormed], output: [normed] });
	}
	return new GraphIndex(model);
}

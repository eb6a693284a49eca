/**
 * The hooks inside each layer, found from the residual adds the trace already has, by structure:
 *
 *   blocks.L.hook_attn_out   the branch operand of the layer's attention add (what attention adds)
 *   blocks.L.hook_mlp_out    the branch operand of its MLP add
 *   blocks.L.hook_mlp_in     the tensor the MLP branch's first weight products read (the normalised
 *                            MLP input), walking back through shape-only ops (torch's Conv1D Reshape)
 *
 * A parallel block (GPT-NeoX) has one add per layer whose branch is itself an Add of the attention
 * and MLP outputs: its two operands are attn_out and mlp_out, told apart by which holds attention.
 * Sandwich norms (Gemma 3) sit inside the branch, so attn_out and mlp_out are after them, as
 * reference.json and Gemma Scope 2 read them.
 *
 * Where a fused op (Skip[Simplified]LayerNormalization) adds the output projection's bias inside
 * itself, the export has no tensor for attn_out / mlp_out: the site records how to split the bias out
 * (cut-segments writes `operand + bias` as its own Add when a cut asks for it). Where a hook cannot
 * be found it is left out, with the reason in the warnings; nothing is guessed.
 */
import type { GraphIndex, NodeProto } from './graph';
import type { ResidualBoundary } from './trace-residual';
import { RESHAPES, WEIGHT_OPS, branchNodes, hasAttention } from './stream-ops';
import { hookName, type HookName } from '../hooks';

export interface ResidualAdd {
	boundary: ResidualBoundary;
	attention: boolean;
	node: NodeProto;
	/** The operand computed by the branch, and its input slot on the add. */
	branch: string;
	branchSlot: number;
	stream: Set<string>;
	downstream: Set<string>;
	/** A bias the fused add adds inside itself (input `slot` of the Skip*LayerNormalization). */
	bias?: { name: string; slot: number };
}

export interface HookSite {
	/** The tensor behind the hook (for a split site, the name the cut gives `operand + bias`). */
	tensor: string;
	source: string;
	/** True when the tensor is not in the export and Loupe writes it. */
	exposed: boolean;
	/** Cutting here first writes `operand + bias` as tensor and feeds the fused op that instead, without its bias. */
	split?: { sum: string; slot: number; operand: string; bias: string; biasSlot: number };
}

export function findSublayerHooks(
	g: GraphIndex,
	layerAdds: ResidualAdd[][],
	kvInputs: Set<string>
): { sites: Record<HookName, HookSite>; warnings: string[] } {
	const sites: Record<HookName, HookSite> = {};
	const missing: string[] = [];
	layerAdds.forEach((adds, l) => {
		const found = (kind: 'attn_out' | 'mlp_in' | 'mlp_out', site: HookSite | string) => {
			if (typeof site === 'string') missing.push(`${hookName(l, kind)}: ${site}`);
			else sites[hookName(l, kind)] = site;
		};
		if (adds.length === 2) {
			found('attn_out', operandSite(g, adds[0], hookName(l, 'attn_out')));
			found('mlp_in', mlpInput(g, adds[1].branch, adds[1].stream, adds[1].downstream));
			found('mlp_out', operandSite(g, adds[1], hookName(l, 'mlp_out')));
			return;
		}
		if (adds.length === 1) {
			const parallel = parallelBranches(g, adds[0], kvInputs);
			if (typeof parallel === 'string') {
				for (const kind of ['attn_out', 'mlp_in', 'mlp_out'] as const) found(kind, parallel);
				return;
			}
			const { attn, mlp, sum } = parallel;
			// A bias fused into the block's add belongs to one of the two outputs, and the graph does not say which.
			const fusedBias =
				adds[0].bias &&
				`the parallel block's bias is added inside ${adds[0].node.opType}, and the graph does not say whether it is attention's or the MLP's`;
			found(
				'attn_out',
				fusedBias || { tensor: attn, source: `${producerOp(g, attn)} (operand of the parallel block's ${sum.opType})`, exposed: false }
			);
			found('mlp_in', mlpInput(g, mlp, adds[0].stream, adds[0].downstream));
			found(
				'mlp_out',
				fusedBias || { tensor: mlp, source: `${producerOp(g, mlp)} (operand of the parallel block's ${sum.opType})`, exposed: false }
			);
			return;
		}
		for (const kind of ['attn_out', 'mlp_in', 'mlp_out'] as const)
			found(
				kind,
				`layer ${l} has ${adds.length} residual adds; Loupe knows where these hooks sit only with one (parallel) or two (attention, then MLP)`
			);
	});
	const warnings = missing.length ? [`Hooks not offered (surgery could not find their tensor): ${missing.join('; ')}.`] : [];
	return { sites, warnings };
}

function producerOp(g: GraphIndex, t: string): string {
	return g.producer.get(t)?.node.opType ?? 'graph input';
}

/** The branch operand of a residual add, or how to write it when a fused op hides a bias in the sum. */
function operandSite(g: GraphIndex, add: ResidualAdd, hook: HookName): HookSite {
	const op = add.node.opType!;
	if (!add.bias) return { tensor: add.branch, source: `${producerOp(g, add.branch)} (branch operand of ${op})`, exposed: false };
	return {
		tensor: `loupe/${hook}`,
		source: `${producerOp(g, add.branch)} + the bias ${op} adds inside (split out by Loupe when cut)`,
		exposed: true,
		split: { sum: add.boundary.tensor, slot: add.branchSlot, operand: add.branch, bias: add.bias.name, biasSlot: add.bias.slot }
	};
}

/** A parallel block's branch: an Add of an attention output and an MLP output (or why it is not one). */
function parallelBranches(g: GraphIndex, add: ResidualAdd, kvInputs: Set<string>): { attn: string; mlp: string; sum: NodeProto } | string {
	const sum = g.producer.get(add.branch)?.node;
	if (!sum || !(sum.opType === 'Add' || sum.opType === 'Sum') || sum.input!.length !== 2)
		return `the layer's one residual branch (${sum?.opType ?? 'a graph input'}) is not a sum of an attention output and an MLP output`;
	const kinds = sum.input!.map((t) => {
		const nodes = branchNodes(g, t, add.stream, add.downstream);
		return { t, weights: nodes.some((n) => WEIGHT_OPS.has(n.opType!)), attention: hasAttention(nodes, kvInputs) };
	});
	const attn = kinds.filter((k) => k.weights && k.attention);
	const mlp = kinds.filter((k) => k.weights && !k.attention);
	if (attn.length !== 1 || mlp.length !== 1)
		return `the operands of the layer's branch ${sum.opType} are not one attention output and one MLP output`;
	return { attn: attn[0].t, mlp: mlp[0].t, sum };
}

/**
 * The MLP's input: what its first weight products (those no other weight product of the branch
 * feeds) read, back through shape-only ops. All of them must read the same tensor.
 */
function mlpInput(g: GraphIndex, branch: string, stream: Set<string>, downstream: Set<string>): HookSite | string {
	const nodes = branchNodes(g, branch, stream, downstream);
	const inBranch = new Set(nodes);
	const weightOps = nodes.filter((n) => WEIGHT_OPS.has(n.opType!));
	const dataInputs = (n: NodeProto) => n.input!.filter((t) => t && !g.isConstant(t));
	const first = weightOps.filter((w) => ![...g.ancestors(dataInputs(w), stream)].some((a) => inBranch.has(a) && WEIGHT_OPS.has(a.opType!)));
	const reads = new Set(first.flatMap((w) => dataInputs(w).map((t) => throughReshapes(g, t, stream))));
	if (reads.size !== 1)
		return reads.size === 0
			? 'the MLP branch has no weight product that reads a computed tensor'
			: `the MLP's first weight products read ${reads.size} different tensors (${[...reads].join(', ')})`;
	const tensor = [...reads][0];
	return { tensor, source: `${producerOp(g, tensor)} (read by the MLP's first ${first[0].opType})`, exposed: false };
}

function throughReshapes(g: GraphIndex, t: string, stream: Set<string>): string {
	for (;;) {
		if (stream.has(t)) return t;
		const p = g.producer.get(t)?.node;
		if (!p || !RESHAPES.has(p.opType!)) return t;
		t = p.input![0];
	}
}

/**
 * What the graph page draws: the pruned graph as plain data (nodes with Neuronpedia's ids, their
 * influence and values; links by node index), made from a graph and the masks `pruneGraph` gives,
 * and the way back from a file: an unpruned graph file (Loupe's, with `input` and `bias`) turned
 * into an AttributionGraph again, so a saved or imported graph can be pruned live like a new one.
 */
import { LoupeError } from '../errors';
import type { AttributionGraph } from './graph';
import { nodeIds, type GraphFile, type GraphNodeKind } from './neuronpedia-graph';
import { targetNode, type PruneResult } from './prune';

export interface ViewNode {
	/** Neuronpedia's node_id ("2_17_3", "E_312_0", "1_err_2", "6_44_3"): what the URL pins. */
	id: string;
	kind: GraphNodeKind;
	layer: number;
	pos: number;
	index: number;
	activation: number | null;
	/** Its share of the logits' attribution (circuit-tracer's node influence); null where unknown (an imported pruned file). */
	influence: number | null;
	input: number | null;
	bias: number | null;
	prob: number | null;
	clerp: string;
}

export interface GraphView {
	prompt: string;
	/** Each prompt token's text. */
	pieces: string[];
	nLayers: number;
	nodes: ViewNode[];
	links: { source: number; target: number; weight: number }[];
	nodeThreshold: number | null;
	edgeThreshold: number | null;
	/** Nodes and nonzero edges before pruning, active features found. */
	total: { nodes: number; edges: number; active: number };
	/** False for a file opened as it was saved (pruned elsewhere): thresholds cannot change it. */
	prunable: boolean;
}

const kindOf = (g: AttributionGraph, i: number): GraphNodeKind => {
	const N = g.features.length;
	const LP = g.nLayers * g.nPos;
	return i < N ? 'feature' : i < N + LP ? 'error' : i < g.nSources ? 'embedding' : 'logit';
};

/** The pruned view of a graph; `clerps` are the labels people gave nodes (by id). */
export function graphView(
	g: AttributionGraph,
	p: PruneResult,
	o: { prompt: string; decode: (t: number) => string; nodeThreshold: number; edgeThreshold: number; clerps?: Map<string, string> }
): GraphView {
	const N = g.features.length;
	const P = g.nPos;
	const n = g.nSources + g.logits.length;
	const index = new Int32Array(n).fill(-1);
	const nodes: ViewNode[] = [];
	for (let i = 0; i < n; i++) {
		if (!p.nodeMask[i]) continue;
		const kind = kindOf(g, i);
		let node: Omit<ViewNode, 'id' | 'clerp'>;
		const base = { influence: p.nodeInfluence[i], input: null, bias: null, prob: null, activation: null };
		if (kind === 'feature') {
			const f = g.features[i];
			node = { ...base, kind, layer: f.layer, pos: f.pos, index: f.feature, activation: f.activation, input: g.input[i], bias: g.bias[i] };
		} else if (kind === 'error') {
			const e = i - N;
			node = { ...base, kind, layer: Math.floor(e / P), pos: e % P, index: -1, activation: g.errorNorm[e] || null };
		} else if (kind === 'embedding') {
			const pos = i - N - g.nLayers * P;
			node = { ...base, kind, layer: -1, pos, index: g.tokens[pos] };
		} else {
			const k = i - g.nSources;
			const row = N + k;
			node = {
				...base,
				kind,
				layer: g.nLayers,
				pos: P - 1,
				index: g.logits[k].token,
				input: g.input[row],
				bias: g.bias[row],
				prob: g.logits[k].prob
			};
		}
		const id = nodeIds(node).node_id;
		const clerp = o.clerps?.get(id) ?? (kind === 'logit' ? `Output "${o.decode(node.index)}" (p=${(node.prob ?? 0).toFixed(3)})` : '');
		index[i] = nodes.push({ ...node, id, clerp }) - 1;
	}
	const links: GraphView['links'] = [];
	let edges = 0;
	for (let r = 0; r < g.nTargets; r++) {
		const t = index[targetNode(g, r)];
		for (let s = 0; s < g.nSources; s++) {
			const e = r * g.nSources + s;
			if (g.edges[e] !== 0) edges++;
			if (t >= 0 && index[s] >= 0 && p.edgeMask[e]) links.push({ source: index[s], target: t, weight: g.edges[e] });
		}
	}
	return {
		prompt: o.prompt,
		pieces: g.tokens.map(o.decode),
		nLayers: g.nLayers,
		nodes,
		links,
		nodeThreshold: o.nodeThreshold,
		edgeThreshold: o.edgeThreshold,
		total: { nodes: n, edges, active: g.nActive },
		prunable: true
	};
}

/** A file as it was saved (pruned by whoever wrote it): drawn as it is. */
export function fileView(f: GraphFile): GraphView {
	return {
		prompt: f.prompt,
		pieces: f.promptTokens,
		nLayers: f.nLayers,
		nodes: f.nodes.map((n) => ({
			id: nodeIds(n).node_id,
			kind: n.kind,
			layer: n.layer,
			pos: n.pos,
			index: n.index,
			activation: n.activation,
			// Neuronpedia's `influence` is the cumulative share at the node's rank: the most influential are smallest.
			influence: n.influence === null ? null : Math.max(0, 1 - n.influence),
			input: n.input ?? null,
			bias: n.bias ?? null,
			prob: n.prob ?? null,
			clerp: n.clerp
		})),
		links: f.links,
		nodeThreshold: f.nodeThreshold ?? null,
		edgeThreshold: f.edgeThreshold ?? null,
		total: { nodes: f.nodes.length, edges: f.links.length, active: f.nodes.filter((n) => n.kind === 'feature').length },
		prunable: false
	};
}

/**
 * An unpruned graph file back into the graph it was written from: every feature, error, token and
 * logit node, the edges as a dense [targets × sources] matrix, each target's input and bias. Null
 * when the file is pruned or lacks what that needs (a circuit-tracer file without input/bias): it
 * is then drawn as it is (`fileView`).
 */
export function graphFromFile(f: GraphFile): AttributionGraph | null {
	if (f.nodeThreshold !== undefined) return null;
	const by = (k: GraphNodeKind) => f.nodes.map((n, i) => ({ n, i })).filter((x) => x.n.kind === k);
	const feats = by('feature').sort((a, b) => a.n.layer - b.n.layer || a.n.pos - b.n.pos || a.n.index - b.n.index);
	const errs = by('error');
	const toks = by('embedding').sort((a, b) => a.n.pos - b.n.pos);
	const logits = by('logit');
	const L = f.nLayers;
	const P = toks.length;
	if (!P || errs.length !== L * P || !logits.length) return null;
	if ([...feats, ...logits].some((x) => x.n.input === undefined || x.n.bias === undefined || x.n.dropped !== undefined)) return null;
	const N = feats.length;
	const nSources = N + L * P + P;
	const nTargets = N + logits.length;
	// File index → node index in circuit-tracer's order.
	const order = new Int32Array(f.nodes.length).fill(-1);
	feats.forEach((x, i) => (order[x.i] = i));
	for (const x of errs) {
		if (x.n.layer < 0 || x.n.layer >= L || x.n.pos < 0 || x.n.pos >= P) return null;
		order[x.i] = N + x.n.layer * P + x.n.pos;
	}
	toks.forEach((x, p) => (order[x.i] = N + L * P + p));
	logits.forEach((x, k) => (order[x.i] = nSources + k));
	const row = (node: number) => (node < N ? node : node >= nSources ? N + (node - nSources) : -1);
	const edges = new Float32Array(nTargets * nSources);
	for (const l of f.links) {
		const s = order[l.source];
		const r = row(order[l.target]);
		if (s < 0 || s >= nSources || r < 0)
			throw new LoupeError(
				'not-a-graph',
				`Link ${f.nodes[l.source].kind} → ${f.nodes[l.target].kind} runs against the graph's order (sources are features, errors and tokens; targets features and logits).`,
				'Choose a graph written by Loupe or circuit-tracer.'
			);
		edges[r * nSources + s] = l.weight;
	}
	const input = new Float64Array(nTargets);
	const bias = new Float64Array(nTargets);
	[...feats, ...logits].forEach((x, r) => {
		input[r] = x.n.input!;
		bias[r] = x.n.bias!;
	});
	const errorNorm = new Float64Array(L * P);
	for (const x of errs) errorNorm[x.n.layer * P + x.n.pos] = x.n.activation ?? 0;
	return {
		tokens: toks.map((x) => x.n.index),
		nLayers: L,
		nPos: P,
		features: feats.map((x) => ({
			layer: x.n.layer,
			pos: x.n.pos,
			feature: x.n.index,
			activation: x.n.activation ?? 0,
			preActivation: x.n.input!
		})),
		logits: logits.map((x) => ({ token: x.n.index, prob: x.n.prob ?? 0 })),
		edges,
		input,
		bias,
		dropped: new Float64Array(nTargets),
		nActive: N,
		nSources,
		nTargets,
		errorNorm,
		settings: { maxNLogits: logits.length, desiredLogitProb: 0.95, batchSize: 64, maxFeatureNodes: N }
	};
}

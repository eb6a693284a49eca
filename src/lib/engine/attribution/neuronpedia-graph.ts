/**
 * Attribution graphs as Neuronpedia's graph JSON (the format circuit-tracer's
 * `create_graph_files` writes and Neuronpedia's viewer reads; schema in `graph-schema.ts`), out
 * and back in.
 *
 * Node ids follow circuit-tracer: features `L_F_P` (jsNodeId `L_F-0`), embeddings `E_T_P`, logits
 * `{L+1}_T_P` (jsNodeId `L_T-P`, clerp `Output "tok" (p=…)`, which the viewer reads the probability
 * from). Error nodes differ: circuit-tracer writes `0_L_P`, which is also the id of layer 0's
 * feature L at position P, so Loupe writes `L_err_P` and reads both.
 *
 * Two fields beyond the schema on every node (allowed: it sets no additionalProperties):
 * `input`, what the node's incoming edges add up to (a feature's pre-activation, a logit node's
 * demeaned logit; 0 for embeddings and errors, which have none), and `bias`, the constant term, so
 * that on an unpruned graph input = Σ incoming weights + bias can be checked from the file alone.
 * A graph limited to its most influential features (maxFeatureNodes) adds `dropped` on targets: what
 * the features left out contributed, so that input = Σ weights + bias + dropped.
 */
import { LoupeError } from '../errors';
import type { AttributionGraph } from './graph';
import { validateGraphJson } from './graph-schema';
import { targetNode, type PruneResult } from './prune';

export type GraphNodeKind = 'feature' | 'error' | 'embedding' | 'logit';

export interface GraphFileNode {
	kind: GraphNodeKind;
	/** Transcoder layer (features, errors); −1 for embeddings; nLayers for logits. */
	layer: number;
	pos: number;
	/** The feature's index (features) or the vocabulary id (embeddings, logits); −1 for errors. */
	index: number;
	activation: number | null;
	influence: number | null;
	/** Absent in files written by other tools. */
	input?: number;
	bias?: number;
	/** What active features left out of the graph (maxFeatureNodes) added to the input; only where some were. */
	dropped?: number;
	/** Logits only. */
	prob?: number;
	clerp: string;
}

export interface GraphFile {
	slug: string;
	scan: string;
	prompt: string;
	promptTokens: string[];
	nLayers: number;
	nodes: GraphFileNode[];
	/** Indices into `nodes`. */
	links: { source: number; target: number; weight: number }[];
	nodeThreshold?: number;
	edgeThreshold?: number;
}

export interface GraphFileOptions {
	slug: string;
	scan: string;
	prompt: string;
	/** Text of each vocabulary id, for prompt_tokens and the logits' labels. */
	decode: (token: number) => string;
	/** Keep only what pruning kept; unpruned (every node, every nonzero edge) without it. */
	prune?: PruneResult & { nodeThreshold: number; edgeThreshold: number };
}

/** The graph as nodes and sparse links in circuit-tracer's node order. */
export function toGraphFile(g: AttributionGraph, o: GraphFileOptions): GraphFile {
	const N = g.features.length;
	const L = g.nLayers;
	const P = g.nPos;
	const all: GraphFileNode[] = [];
	const inf = (i: number) => (o.prune ? o.prune.cumulativeScores[i] : null);
	const limited = g.dropped.some((d) => d !== 0);
	const drop = (row: number) => (limited ? { dropped: g.dropped[row] } : {});
	g.features.forEach((f, i) =>
		all.push({
			kind: 'feature',
			layer: f.layer,
			pos: f.pos,
			index: f.feature,
			activation: f.activation,
			influence: inf(i),
			input: g.input[i],
			bias: g.bias[i],
			...drop(i),
			clerp: ''
		})
	);
	for (let l = 0; l < L; l++)
		for (let p = 0; p < P; p++)
			all.push({
				kind: 'error',
				layer: l,
				pos: p,
				index: -1,
				activation: null,
				influence: inf(N + l * P + p),
				input: 0,
				bias: 0,
				clerp: ''
			});
	for (let p = 0; p < P; p++)
		all.push({
			kind: 'embedding',
			layer: -1,
			pos: p,
			index: g.tokens[p],
			activation: null,
			influence: inf(N + L * P + p),
			input: 0,
			bias: 0,
			clerp: ''
		});
	g.logits.forEach((lg, k) =>
		all.push({
			kind: 'logit',
			layer: L,
			pos: P - 1,
			index: lg.token,
			activation: null,
			influence: inf(g.nSources + k),
			input: g.input[N + k],
			bias: g.bias[N + k],
			...drop(N + k),
			prob: lg.prob,
			clerp: `Output "${o.decode(lg.token)}" (p=${lg.prob.toFixed(3)})`
		})
	);
	const keepNode = (i: number) => !o.prune || o.prune.nodeMask[i] === 1;
	const newIndex = new Int32Array(all.length).fill(-1);
	const nodes: GraphFileNode[] = [];
	all.forEach((n, i) => {
		if (keepNode(i)) newIndex[i] = nodes.push(n) - 1;
	});
	const links: GraphFile['links'] = [];
	for (let r = 0; r < g.nTargets; r++) {
		const t = newIndex[targetNode(g, r)];
		if (t < 0) continue;
		for (let s = 0; s < g.nSources; s++) {
			const e = r * g.nSources + s;
			const weight = g.edges[e];
			if (newIndex[s] < 0 || (o.prune ? !o.prune.edgeMask[e] : weight === 0)) continue;
			links.push({ source: newIndex[s], target: t, weight });
		}
	}
	return {
		slug: o.slug,
		scan: o.scan,
		prompt: o.prompt,
		promptTokens: g.tokens.map(o.decode),
		nLayers: L,
		nodes,
		links,
		...(o.prune ? { nodeThreshold: o.prune.nodeThreshold, edgeThreshold: o.prune.edgeThreshold } : {})
	};
}

/** Neuronpedia's ids of a node (the view and the URL use node_id too). */
export function nodeIds(n: Pick<GraphFileNode, 'kind' | 'layer' | 'pos' | 'index'>): {
	node_id: string;
	jsNodeId: string;
	layer: string;
	feature: number;
} {
	switch (n.kind) {
		case 'feature':
			return { node_id: `${n.layer}_${n.index}_${n.pos}`, jsNodeId: `${n.layer}_${n.index}-0`, layer: String(n.layer), feature: n.index };
		case 'error':
			return { node_id: `${n.layer}_err_${n.pos}`, jsNodeId: `${n.layer}_err_${n.pos}-0`, layer: String(n.layer), feature: -1 };
		case 'embedding':
			return { node_id: `E_${n.index}_${n.pos}`, jsNodeId: `E_${n.index}-${n.pos}`, layer: 'E', feature: n.pos };
		case 'logit':
			return {
				node_id: `${n.layer + 1}_${n.index}_${n.pos}`,
				jsNodeId: `L_${n.index}-${n.pos}`,
				layer: String(n.layer + 1),
				feature: n.index
			};
	}
}

const FEATURE_TYPE: Record<GraphNodeKind, string> = {
	feature: 'cross layer transcoder',
	error: 'mlp reconstruction error',
	embedding: 'embedding',
	logit: 'logit'
};

/** Neuronpedia's graph JSON for a graph file (an object: JSON.stringify it to save). */
export function toNeuronpedia(f: GraphFile): Record<string, unknown> {
	const ids = f.nodes.map(nodeIds);
	const firstLogit = f.nodes.findIndex((n) => n.kind === 'logit');
	return {
		metadata: {
			slug: f.slug,
			scan: f.scan,
			prompt_tokens: f.promptTokens,
			prompt: f.prompt,
			...(f.nodeThreshold !== undefined ? { node_threshold: f.nodeThreshold } : {}),
			...(f.nodeThreshold !== undefined ? { pruning_settings: { node_threshold: f.nodeThreshold, edge_threshold: f.edgeThreshold } } : {}),
			info: { generator: { name: 'Loupe' } },
			// Not in the schema (allowed): what an importer needs that the nodes do not say.
			loupe: { n_layers: f.nLayers }
		},
		qParams: { pinnedIds: [], supernodes: [], linkType: 'both', clickedId: '', sg_pos: '' },
		nodes: f.nodes.map((n, i) => ({
			...ids[i],
			ctx_idx: n.pos,
			feature_type: FEATURE_TYPE[n.kind],
			clerp: n.clerp,
			influence: n.influence,
			activation: n.activation,
			...(n.kind === 'logit' ? { token_prob: n.prob, is_target_logit: i === firstLogit } : {}),
			...(n.input !== undefined ? { input: n.input } : {}),
			...(n.bias !== undefined ? { bias: n.bias } : {}),
			...(n.dropped !== undefined ? { dropped: n.dropped } : {})
		})),
		links: f.links.map((l) => ({ source: ids[l.source].node_id, target: ids[l.target].node_id, weight: l.weight }))
	};
}

const refuse = (what: string) => {
	throw new LoupeError(
		'not-a-graph',
		`This is not an attribution graph Loupe can open: ${what}.`,
		"Choose a graph JSON written by Loupe, circuit-tracer or Neuronpedia's graph export."
	);
};

/** Reads Neuronpedia's graph JSON (Loupe's, or circuit-tracer's without input/bias). */
export function fromNeuronpedia(json: unknown): GraphFile {
	const problems = validateGraphJson(json);
	if (problems.length) refuse(`it does not follow Neuronpedia's graph schema (${problems.slice(0, 5).join('; ')})`);
	const j = json as {
		metadata: {
			slug: string;
			scan: string;
			prompt: string;
			prompt_tokens: string[];
			node_threshold?: number;
			pruning_settings?: { edge_threshold?: number };
			loupe?: { n_layers?: number };
		};
		nodes: Record<string, unknown>[];
		links: { source: string; target: string; weight: number }[];
	};
	const byId = new Map<string, number>();
	const nodes: GraphFileNode[] = j.nodes.map((raw, i) => {
		const id = raw.node_id as string;
		if (byId.has(id)) refuse(`node id "${id}" appears twice`);
		byId.set(id, i);
		const type = raw.feature_type as string;
		const pos = raw.ctx_idx as number;
		const num = (k: string) => (typeof raw[k] === 'number' ? (raw[k] as number) : undefined);
		const common = {
			pos,
			activation: (raw.activation as number | null | undefined) ?? null,
			influence: (raw.influence as number | null | undefined) ?? null,
			clerp: raw.clerp as string,
			...(num('input') !== undefined ? { input: num('input') } : {}),
			...(num('bias') !== undefined ? { bias: num('bias') } : {}),
			...(num('dropped') !== undefined ? { dropped: num('dropped') } : {})
		};
		const m = /^(\d+)_(\d+)_(\d+)$/.exec(id);
		if (type === 'embedding') {
			const e = /^E_(\d+)_(\d+)$/.exec(id);
			if (!e) refuse(`embedding node "${id}" does not name its token as E_<token>_<position>`);
			return { kind: 'embedding', layer: -1, index: Number(e![1]), ...common };
		}
		if (type === 'logit')
			return { kind: 'logit', layer: Number(raw.layer) - 1, index: raw.feature as number, prob: num('token_prob'), ...common };
		if (type === 'mlp reconstruction error') {
			const e = /^(\d+)_err_(\d+)$/.exec(id);
			// circuit-tracer's 0_L_P: the layer is the middle number (and the node's `layer` field).
			return { kind: 'error', layer: e ? Number(e[1]) : Number(raw.layer), index: -1, ...common };
		}
		if (/transcoder/.test(type)) {
			// circuit-tracer may offset `feature` by layer · 10^k; the id holds the plain index.
			return { kind: 'feature', layer: Number(raw.layer), index: m ? Number(m[2]) : (raw.feature as number), ...common };
		}
		return refuse(
			`node "${id}" has feature_type "${type}", which Loupe's graphs do not have (transcoder features, MLP errors, embeddings, logits)`
		);
	});
	for (const n of nodes) if (n.kind === 'logit' && n.prob === undefined) delete n.prob;
	const links = j.links.map((l, i) => {
		const source = byId.get(l.source);
		const target = byId.get(l.target);
		if (source === undefined || target === undefined)
			refuse(`link ${i} joins "${l.source}" to "${l.target}", and no node has ${source === undefined ? 'the first' : 'the second'} id`);
		return { source: source!, target: target!, weight: l.weight };
	});
	const layers = nodes.filter((n) => n.kind === 'logit').map((n) => n.layer);
	const nLayers = j.metadata.loupe?.n_layers ?? (layers.length ? layers[0] : Math.max(0, ...nodes.map((n) => n.layer + 1)));
	return {
		slug: j.metadata.slug,
		scan: j.metadata.scan,
		prompt: j.metadata.prompt,
		promptTokens: j.metadata.prompt_tokens,
		nLayers,
		nodes,
		links,
		...(j.metadata.node_threshold !== undefined ? { nodeThreshold: j.metadata.node_threshold } : {}),
		...(j.metadata.pruning_settings?.edge_threshold !== undefined ? { edgeThreshold: j.metadata.pruning_settings.edge_threshold } : {})
	};
}

/**
 * Pruning by cumulative influence, as circuit-tracer's `prune_graph` (graph.py) defines it.
 *
 * Node order: [features N | errors L·P | tokens P | logits K]. With Â the adjacency with each
 * target's row normalised to |A[t, ·]| / Σ|A[t, ·]|, and w the logits' probabilities, a node's
 * influence on the output is  (w Â + w Â² + …)[node]: the share of the logits' attribution that
 * flows through it along every path. The series ends because the graph is a DAG (a node only reads
 * earlier layers). Keep the fewest nodes covering `nodeThreshold` (0.8) of the total, always the
 * tokens and logits; then, on the graph of kept nodes, score each edge by Â[t, s] · (influence[t] + w[t])
 * and keep the fewest covering `edgeThreshold` (0.98); finally drop feature and error nodes left with
 * no kept outgoing edge and features with no kept incoming edge, until nothing changes.
 *
 * Works on the (targets × sources) rows as `computeEdges` leaves them: no square n × n matrix.
 */
import type { AttributionGraph } from './graph';
import { LoupeError } from '../errors';

export interface PruneResult {
	/** Per node (circuit-tracer order): kept or not. */
	nodeMask: Uint8Array;
	/** Per edge, [nTargets × nSources] like `graph.edges`. */
	edgeMask: Uint8Array;
	/** Per node: the cumulative influence fraction at its rank (Neuronpedia's `influence`, which its viewer prunes by). */
	cumulativeScores: Float64Array;
	nodeInfluence: Float64Array;
}

/** Node index of target row r: features keep their index, logit k is node nSources + k. */
export const targetNode = (g: AttributionGraph, row: number) => (row < g.features.length ? row : g.nSources + (row - g.features.length));

/** Σ_{k≥1} w Âᵏ over target rows `rows` (rows of Â, already normalised), w given per node. */
function influence(g: AttributionGraph, norm: Float64Array, w: Float64Array): Float64Array {
	const n = g.nSources + g.logits.length;
	const total = new Float64Array(n);
	let cur = w.slice();
	for (let iter = 0; iter <= g.nLayers + 2; iter++) {
		const next = new Float64Array(n);
		let any = false;
		for (let r = 0; r < g.nTargets; r++) {
			const c = cur[targetNode(g, r)];
			if (c === 0) continue;
			const row = r * g.nSources;
			for (let s = 0; s < g.nSources; s++) {
				const a = norm[row + s];
				if (a !== 0) {
					next[s] += c * a;
					any = true;
				}
			}
		}
		if (!any) return total;
		for (let i = 0; i < n; i++) total[i] += next[i];
		cur = next;
	}
	throw new Error('influence did not converge: the graph has a cycle');
}

function normalisedRows(g: AttributionGraph, keep?: Uint8Array): Float64Array {
	const out = new Float64Array(g.nTargets * g.nSources);
	for (let r = 0; r < g.nTargets; r++) {
		if (keep && !keep[targetNode(g, r)]) continue;
		const row = r * g.nSources;
		let sum = 0;
		for (let s = 0; s < g.nSources; s++) if (!keep || keep[s]) sum += Math.abs(g.edges[row + s]);
		const inv = 1 / Math.max(sum, 1e-10);
		for (let s = 0; s < g.nSources; s++) if (!keep || keep[s]) out[row + s] = Math.abs(g.edges[row + s]) * inv;
	}
	return out;
}

/** The score at which the kept scores (sorted from the top) first cover `threshold` of their total. */
function findThreshold(scores: ArrayLike<number>, threshold: number): number {
	const nonzero = Float64Array.from(Array.prototype.filter.call(scores, (v: number) => v > 0) as number[])
		.sort()
		.reverse();
	let total = 0;
	for (const v of nonzero) total += v;
	if (total === 0) return 0;
	let cum = 0;
	for (let i = 0; i < nonzero.length; i++) {
		cum += nonzero[i];
		if (cum / total >= threshold) return nonzero[i];
	}
	return 0; // past every nonzero score (threshold 1 with rounding): circuit-tracer's index lands on a zero
}

export function pruneGraph(g: AttributionGraph, nodeThreshold = 0.8, edgeThreshold = 0.98): PruneResult {
	for (const [name, v] of [
		['node threshold', nodeThreshold],
		['edge threshold', edgeThreshold]
	] as const)
		if (!(v >= 0 && v <= 1))
			throw new LoupeError(
				'model-failed',
				`The ${name} is ${v}; it must lie between 0 and 1.`,
				'Pick a threshold in [0, 1] (circuit-tracer uses 0.8 for nodes, 0.98 for edges).'
			);
	const N = g.features.length;
	const K = g.logits.length;
	const n = g.nSources + K;
	const nonLogitTok = g.nSources - g.nPos; // features and errors
	const w = new Float64Array(n);
	g.logits.forEach((l, k) => (w[g.nSources + k] = l.prob));

	const nodeInfluence = influence(g, normalisedRows(g), w);
	const nodeCut = findThreshold(nodeInfluence, nodeThreshold);
	const nodeMask = new Uint8Array(n);
	for (let i = 0; i < n; i++) nodeMask[i] = i >= nonLogitTok || nodeInfluence[i] >= nodeCut ? 1 : 0;

	const pruned = normalisedRows(g, nodeMask);
	const edgeInfluence = influence(g, pruned, w);
	for (let i = 0; i < n; i++) edgeInfluence[i] += w[i];
	const scores = new Float64Array(g.nTargets * g.nSources);
	for (let r = 0; r < g.nTargets; r++) {
		const inf = edgeInfluence[targetNode(g, r)];
		for (let s = 0; s < g.nSources; s++) scores[r * g.nSources + s] = pruned[r * g.nSources + s] * inf;
	}
	const edgeCut = findThreshold(scores, edgeThreshold);
	const edgeMask = new Uint8Array(scores.length);
	for (let i = 0; i < scores.length; i++) edgeMask[i] = scores[i] >= edgeCut ? 1 : 0;

	// Drop nodes left without outgoing (features, errors) or incoming (features) edges, to a fixed point.
	for (let changed = true; changed;) {
		changed = false;
		for (let r = 0; r < g.nTargets; r++)
			for (let s = 0; s < g.nSources; s++)
				if (edgeMask[r * g.nSources + s] && (!nodeMask[targetNode(g, r)] || !nodeMask[s])) edgeMask[r * g.nSources + s] = 0;
		const hasOut = new Uint8Array(g.nSources);
		const hasIn = new Uint8Array(N);
		for (let r = 0; r < g.nTargets; r++)
			for (let s = 0; s < g.nSources; s++)
				if (edgeMask[r * g.nSources + s]) {
					hasOut[s] = 1;
					if (r < N) hasIn[r] = 1;
				}
		for (let i = 0; i < nonLogitTok; i++) {
			const keep = nodeMask[i] && hasOut[i] && (i >= N || hasIn[i]) ? 1 : 0;
			if (keep !== nodeMask[i]) {
				nodeMask[i] = keep;
				changed = true;
			}
		}
	}

	const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => nodeInfluence[b] - nodeInfluence[a]);
	let total = 0;
	for (const v of nodeInfluence) total += v;
	const cumulativeScores = new Float64Array(n);
	let cum = 0;
	for (const i of order) {
		cum += nodeInfluence[i];
		cumulativeScores[i] = total > 0 ? cum / total : 0;
	}
	return { nodeMask, edgeMask, cumulativeScores, nodeInfluence };
}

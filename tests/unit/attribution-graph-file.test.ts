import { describe, expect, it } from 'vitest';
import { readLlama2cCheckpoint } from '../../src/lib/engine/model/llama2c/checkpoint';
import { Llama2cTokenizer, BOS } from '../../src/lib/engine/model/llama2c/tokenizer';
import { attribute, type AttributionGraph } from '../../src/lib/engine/attribution/graph';
import { pruneGraph } from '../../src/lib/engine/attribution/prune';
import { salientLogits } from '../../src/lib/engine/attribution/salient-logits';
import { validateGraphJson } from '../../src/lib/engine/attribution/graph-schema';
import { fromNeuronpedia, toGraphFile, toNeuronpedia } from '../../src/lib/engine/attribution/neuronpedia-graph';
import { randomTranscoders } from '../attribution-reference';
import { readArrayBuffer, stories260KDir } from '../fixtures';

const weights = readLlama2cCheckpoint(readArrayBuffer(`${stories260KDir}/stories260K.bin`), 'stories260K.bin');
const tokenizer = new Llama2cTokenizer(readArrayBuffer(`${stories260KDir}/tok512.bin`), weights.config.vocabSize);
const prompt = 'Lily saw a';
const tokens = [BOS, ...tokenizer.encode(prompt, false)];
const decode = (t: number) => tokenizer.decode([t]);

/**
 * circuit-tracer's prune_graph (graph.py) on a dense square matrix, written from its formulas:
 * influence = Σ_k w Âᵏ by repeated products, thresholds by cumulative sums of sorted scores.
 */
function densePrune(g: AttributionGraph, nodeT: number, edgeT: number) {
	const N = g.features.length;
	const K = g.logits.length;
	const n = g.nSources + K;
	const A = Array.from({ length: n }, () => new Float64Array(n));
	for (let r = 0; r < g.nTargets; r++) {
		const node = r < N ? r : g.nSources + (r - N);
		for (let s = 0; s < g.nSources; s++) A[node][s] = g.edges[r * g.nSources + s];
	}
	const normalize = (M: Float64Array[]) =>
		M.map((row) => {
			const sum = Math.max(
				row.reduce((a, v) => a + Math.abs(v), 0),
				1e-10
			);
			return row.map((v) => Math.abs(v) / sum);
		});
	const vecMat = (v: Float64Array, M: Float64Array[]) => {
		const out = new Float64Array(n);
		for (let i = 0; i < n; i++) if (v[i]) for (let j = 0; j < n; j++) out[j] += v[i] * M[i][j];
		return out;
	};
	const influence = (M: Float64Array[], w: Float64Array) => {
		let cur = vecMat(w, M);
		const total = cur.slice();
		while (cur.some((v) => v !== 0)) {
			cur = vecMat(cur, M);
			cur.forEach((v, i) => (total[i] += v));
		}
		return total;
	};
	const threshold = (scores: ArrayLike<number>, t: number) => {
		const sorted = Array.from(scores).sort((a, b) => b - a);
		const total = sorted.reduce((a, b) => a + b, 0);
		let cum = 0;
		const idx = sorted.findIndex((v) => (cum += v) / total >= t);
		return sorted[idx < 0 ? sorted.length - 1 : idx];
	};
	const w = new Float64Array(n);
	g.logits.forEach((l, k) => (w[g.nSources + k] = l.prob));
	const nodeInf = influence(normalize(A), w);
	const nodeCut = threshold(nodeInf, nodeT);
	const nodeMask = Array.from(nodeInf, (v, i) => v >= nodeCut || i >= n - K - g.nPos);
	const pruned = A.map((row, i) => row.map((v, j) => (nodeMask[i] && nodeMask[j] ? v : 0)));
	const normP = normalize(pruned);
	const edgeInf = influence(normP, w).map((v, i) => v + w[i]);
	const scores = normP.map((row, i) => row.map((v) => v * edgeInf[i]));
	const edgeCut = threshold(
		scores.flatMap((r) => Array.from(r)),
		edgeT
	);
	const edgeMask = scores.map((row) => Array.from(row, (v) => v >= edgeCut));
	const refine = () => {
		for (let i = 0; i < n - K - g.nPos; i++) nodeMask[i] &&= edgeMask.some((row) => row[i]);
		for (let i = 0; i < N; i++) nodeMask[i] &&= edgeMask[i].some(Boolean);
	};
	let before = nodeMask.slice();
	refine();
	while (before.some((v, i) => v !== nodeMask[i])) {
		before = nodeMask.slice();
		for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) if (!nodeMask[i] || !nodeMask[j]) edgeMask[i][j] = false;
		refine();
	}
	return { nodeMask, edgeMask, nodeInf };
}

describe('attribution graph files (Neuronpedia graph JSON) and pruning', async () => {
	const { graph } = await attribute(weights, tokens, randomTranscoders(weights.config, 11), { batchSize: 32 });
	const N = graph.features.length;

	it('prunes as circuit-tracer does (dense reference of prune_graph), defaults 0.8 / 0.98', () => {
		const mine = pruneGraph(graph);
		const ref = densePrune(graph, 0.8, 0.98);
		expect(Array.from(mine.nodeMask, Boolean)).toEqual(ref.nodeMask);
		for (let r = 0; r < graph.nTargets; r++) {
			const node = r < N ? r : graph.nSources + (r - N);
			const row = Array.from(mine.edgeMask.subarray(r * graph.nSources, (r + 1) * graph.nSources), Boolean);
			expect(row).toEqual(ref.edgeMask[node].slice(0, graph.nSources));
		}
		mine.nodeInfluence.forEach((v, i) => expect(v).toBeCloseTo(ref.nodeInf[i], 12));
		const kept = mine.nodeMask.reduce((a, b) => a + b, 0);
		const keptEdges = mine.edgeMask.reduce((a, b) => a + b, 0);
		console.log(`pruned: ${kept} of ${mine.nodeMask.length} nodes, ${keptEdges} of ${graph.edges.filter((e) => e !== 0).length} edges`);
		expect(kept).toBeLessThan(mine.nodeMask.length);
		// Looser thresholds keep more.
		expect(pruneGraph(graph, 0.95, 0.99).nodeMask.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(kept);
		expect(() => pruneGraph(graph, 1.5)).toThrow(/node threshold is 1.5; it must lie between 0 and 1/);
	});

	it('exports the unpruned graph as schema-valid JSON whose nodes are complete from the file alone, and re-imports it unchanged', () => {
		const file = toGraphFile(graph, { slug: 'lily', scan: 'stories260K', prompt, decode });
		const json = JSON.parse(JSON.stringify(toNeuronpedia(file)));
		expect(validateGraphJson(json)).toEqual([]);
		expect(json.nodes.length).toBe(graph.nSources + graph.logits.length);
		const incoming = new Map<string, number>();
		for (const l of json.links) incoming.set(l.target, (incoming.get(l.target) ?? 0) + l.weight);
		let worst = 0;
		for (const n of json.nodes)
			if (n.feature_type === 'cross layer transcoder' || n.feature_type === 'logit')
				worst = Math.max(worst, Math.abs((incoming.get(n.node_id) ?? 0) + n.bias - n.input) / Math.max(1, Math.abs(n.input)));
		console.log(`completeness from the file: worst relative |Σ weights + bias − input| ${worst.toExponential(2)}`);
		expect(worst).toBeLessThan(1e-4);
		expect(fromNeuronpedia(json)).toEqual(file);
		expect(json.nodes.find((n: { feature_type: string }) => n.feature_type === 'logit').clerp).toMatch(/^Output ".*" \(p=0\.\d{3}\)$/);
	});

	it('exports the pruned graph (influence, thresholds) and re-imports it unchanged', () => {
		const p = pruneGraph(graph);
		const file = toGraphFile(graph, {
			slug: 'lily',
			scan: 'stories260K',
			prompt,
			decode,
			prune: { ...p, nodeThreshold: 0.8, edgeThreshold: 0.98 }
		});
		const json = JSON.parse(JSON.stringify(toNeuronpedia(file)));
		expect(validateGraphJson(json)).toEqual([]);
		expect(json.metadata.node_threshold).toBe(0.8);
		expect(json.nodes.length).toBe(p.nodeMask.reduce((a, b) => a + b, 0));
		expect(json.links.length).toBe(p.edgeMask.reduce((a, b) => a + b, 0));
		expect(fromNeuronpedia(json)).toEqual(file);
	});

	it('carries `dropped` on the targets of a graph limited to its most influential features, and re-imports it', async () => {
		const limited = (await attribute(weights, tokens, randomTranscoders(weights.config, 11), { batchSize: 16, maxFeatureNodes: 40 })).graph;
		const file = toGraphFile(limited, { slug: 'top40', scan: 'stories260K', prompt, decode });
		const json = JSON.parse(JSON.stringify(toNeuronpedia(file)));
		expect(validateGraphJson(json)).toEqual([]);
		const incoming = new Map<string, number>();
		for (const l of json.links) incoming.set(l.target, (incoming.get(l.target) ?? 0) + l.weight);
		for (const n of json.nodes)
			if (n.feature_type === 'cross layer transcoder' || n.feature_type === 'logit')
				expect(Math.abs((incoming.get(n.node_id) ?? 0) + n.bias + n.dropped - n.input)).toBeLessThan(1e-4 * Math.max(1, Math.abs(n.input)));
		expect(fromNeuronpedia(json)).toEqual(file);
	});

	it('opens a graph as circuit-tracer writes it (no input/bias, 0_L_P error ids, offset feature numbers)', () => {
		const ct = {
			metadata: {
				slug: 'ct',
				scan: 'gemma-2-2b',
				transcoder_list: [],
				prompt_tokens: ['<bos>', 'The'],
				prompt: '<bos>The',
				node_threshold: 0.8
			},
			qParams: { pinnedIds: [], supernodes: [], linkType: 'both', clickedId: '', sg_pos: '' },
			nodes: [
				{
					node_id: '3_253_1',
					feature: 3 * 100000 + 253,
					layer: '3',
					ctx_idx: 1,
					feature_type: 'cross layer transcoder',
					jsNodeId: '3_253-0',
					clerp: '',
					influence: 0.4,
					activation: 9.5
				},
				{
					node_id: '0_2_1',
					feature: -1,
					layer: '2',
					ctx_idx: 1,
					feature_type: 'mlp reconstruction error',
					jsNodeId: '2_1-0',
					clerp: '',
					influence: 0.5
				},
				{ node_id: 'E_651_1', feature: 1, layer: 'E', ctx_idx: 1, feature_type: 'embedding', jsNodeId: 'E_651-1', clerp: '' },
				{
					node_id: '27_9_1',
					feature: 9,
					layer: '27',
					ctx_idx: 1,
					feature_type: 'logit',
					jsNodeId: 'L_9-1',
					clerp: 'Output " cat" (p=0.500)',
					token_prob: 0.5,
					is_target_logit: true
				}
			],
			links: [
				{ source: 'E_651_1', target: '3_253_1', weight: 1.5 },
				{ source: '3_253_1', target: '27_9_1', weight: 2 },
				{ source: '0_2_1', target: '27_9_1', weight: -0.25 }
			]
		};
		const f = fromNeuronpedia(ct);
		expect(f.nLayers).toBe(26);
		expect(f.nodes.map((n) => [n.kind, n.layer, n.pos, n.index])).toEqual([
			['feature', 3, 1, 253],
			['error', 2, 1, -1],
			['embedding', -1, 1, 651],
			['logit', 26, 1, 9]
		]);
		expect(f.nodes[0].input).toBeUndefined();
		expect(f.links).toEqual([
			{ source: 2, target: 0, weight: 1.5 },
			{ source: 0, target: 3, weight: 2 },
			{ source: 1, target: 3, weight: -0.25 }
		]);
	});

	it('refuses files that break the schema or name nodes that are not there, saying where', () => {
		const file = toNeuronpedia(toGraphFile(graph, { slug: 's', scan: 'stories260K', prompt, decode })) as {
			metadata: Record<string, unknown>;
			nodes: Record<string, unknown>[];
			links: Record<string, unknown>[];
		};
		const copy = () => JSON.parse(JSON.stringify(file));
		const noPrompt = copy();
		delete noPrompt.metadata.prompt;
		expect(() => fromNeuronpedia(noPrompt)).toThrow(/\$\.metadata: missing required key "prompt"/);
		const badLayer = copy();
		badLayer.nodes[0].ctx_idx = 1.5;
		expect(() => fromNeuronpedia(badLayer)).toThrow(/\$\.nodes\[0\]\.ctx_idx: expected integer, found number/);
		const dangling = copy();
		dangling.links[0].source = 'nowhere';
		expect(() => fromNeuronpedia(dangling)).toThrow(/link 0 joins "nowhere" to .* no node has the first id/);
		expect(() => fromNeuronpedia('<html>')).toThrow(/\$: expected object, found string/);
		const lorsa = copy();
		lorsa.nodes[0].feature_type = 'lorsa';
		expect(() => fromNeuronpedia(lorsa)).toThrow(/feature_type "lorsa"/);
	});
});

describe('salient logits (circuit-tracer compute_salient_logits)', () => {
	it('keeps the fewest top tokens reaching the probability, at most 10, with demeaned rows', () => {
		// logits chosen so the probabilities are 0.5, 0.25, 0.125, … (ln 2 steps).
		const V = 16;
		const logits = Array.from({ length: V }, (_, v) => -v * Math.log(2));
		const cls = Float32Array.from({ length: V * 2 }, (_, i) => (i % 2 ? i : -i));
		const z = logits.reduce((a, l) => a + Math.exp(l), 0);
		const picked = salientLogits(logits, cls, 2, 10, 0.8);
		// cumulative: 0.5, 0.75, 0.875 → three tokens to reach 0.8
		expect(picked.map((p) => p.token)).toEqual([0, 1, 2]);
		expect(picked[0].prob).toBeCloseTo(1 / z, 12);
		const mean0 = Array.from({ length: V }, (_, v) => cls[v * 2]).reduce((a, b) => a + b, 0) / V;
		expect(picked[1].vector[0]).toBeCloseTo(cls[2] - mean0, 10);
		expect(picked[2].demeanedLogit).toBeCloseTo(logits[2] - logits.reduce((a, b) => a + b, 0) / V, 12);
		expect(salientLogits(logits, cls, 2, 10, 0.9999999).length).toBe(10);
	});
});

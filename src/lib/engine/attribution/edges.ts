/**
 * The edges of an attribution graph, by batched backward passes through the frozen replacement
 * model (circuit-tracer's algorithm, one pass per batch of targets rather than per target).
 *
 * A target's input is linear in the sources: a feature's pre-activation is W_enc[:, f] · mlp_in,
 * mlp_in = diag(g_ffn · s_ffn) · x_mid with the norm frozen; a logit node's is the demeaned
 * unembedding row · diag(g_final · s_final) · x_final. So the gradient of that input with respect
 * to the residual stream, taken back through the frozen paths, contracted with a source vector
 * written at its position, is the source's direct effect: the edge
 *
 *   edge(s → t) = activation_s · (W_dec[s] · ∂input_t/∂resid)    (error, embedding vectors alike).
 *
 * Going down the network for a batch of targets, at layer l (G = ∂input/∂resid after layer l):
 *   read the layer's sources (features, errors, b_dec) off G        → edges, bias
 *   G ← G + diag(ffnScale) W_skipᵀ G                                 (before the MLP)
 *   inject the targets that are features of layer l (their input reads here)
 *   G ← G + diag(attnScale) W_vᵀ mix(Aᵀ, W_oᵀ G)                      (before attention)
 * and at the bottom read the token embeddings. Targets of several layers share one batch: a
 * target injected at layer l has no gradient above it, so it gets no edge from its own or later
 * layers, as the graph's causal order demands. Memory: one [batch, P, dim] gradient and the edge
 * rows, (active features + logits) × (active features + errors + tokens), never P²-dense
 * activations.
 */
import type { BackwardBackend, Injection } from './backend';
import type { LinearContext } from './linear-model';
import type { ActiveFeature } from './replacement';
import type { SalientLogit } from './salient-logits';
import type { Transcoder } from './transcoder';

export interface EdgeRows {
	/** [nTargets × nSources], row = target (kept features, then logits), column = source (kept features, errors, tokens). */
	edges: Float32Array;
	/** The constant term of each target's input: b_enc (features) plus every b_dec's direct effect. */
	bias: Float64Array;
	/** Per target: the summed direct effect of the active features not kept as nodes (0 when all are kept). */
	dropped: Float64Array;
	/** Indices into the active-feature list of the features kept as nodes, ascending. */
	kept: Int32Array;
	nSources: number;
	nTargets: number;
}

export interface EdgeOptions {
	batchSize?: number;
	/** Compute rows for at most this many features, picked by estimated influence (circuit-tracer's max_feature_nodes). */
	maxFeatureNodes?: number;
	/** Batches between re-rankings when `maxFeatureNodes` picks features (circuit-tracer's update_interval, 4). */
	updateInterval?: number;
	onProgress?: (done: number, total: number) => void;
}

type Target = { node: number; layer: number; pos: number; inject: Injection['vector'] };

export async function computeEdges<G>(
	ctx: LinearContext,
	backend: BackwardBackend<G>,
	features: ActiveFeature[],
	logits: SalientLogit[],
	transcoders: Transcoder[],
	opts: EdgeOptions = {}
): Promise<EdgeRows> {
	const { nPos: P, dim, nLayers: L } = ctx;
	const N = features.length;
	const K = logits.length;
	const M = Math.min(N, Math.max(0, opts.maxFeatureNodes ?? N));
	const nSrc = N + L * P + P; // columns while computing: every active feature
	const slots = M + K;
	const rows = new Float32Array(slots * nSrc);
	const rowBias = new Float64Array(slots);
	const slotNode = new Int32Array(slots).fill(-1); // node index (circuit-tracer order) of each filled row
	const batchSize = Math.max(1, opts.batchSize ?? 64);
	// Features are listed layer by layer, so layer l's feature sources are one contiguous range.
	const featureStart = new Int32Array(L + 1);
	for (const f of features) featureStart[f.layer + 1]++;
	for (let l = 0; l < L; l++) featureStart[l + 1] += featureStart[l];

	// A LayerNorm export's read-outs pass through the norm's centring too (linear-model.ts).
	const centre = (v: Float64Array) => {
		if (!ctx.centred) return v;
		const mean = v.reduce((a, b) => a + b, 0) / v.length;
		return v.map((x) => x - mean);
	};
	const logitTarget = (k: number): Target => ({
		node: nSrc + k,
		layer: L,
		pos: P - 1,
		inject: centre(Float64Array.from(logits[k].vector, (v, i) => v * ctx.finalScale[i]))
	});
	const featureTarget = (i: number): Target => {
		const f = features[i];
		const t = transcoders[f.layer];
		const scale = ctx.layers[f.layer].ffnScale;
		const v = new Float64Array(dim);
		for (let d = 0; d < dim; d++) v[d] = scale[f.pos * dim + d] * t.wEnc[d * t.dSae + f.feature];
		return { node: i, layer: f.layer, pos: f.pos, inject: centre(v) };
	};

	let filled = 0;
	const total = slots;
	// Which row of `rows` each target fills: with every feature kept, its place in the graph
	// (features by index, then logits), so no copy is needed; else the order of visiting.
	const slotFor = (t: Target) => (M === N ? (t.node < N ? t.node : N + (t.node - nSrc)) : filled++);
	/** One backward pass for a batch of targets. */
	const runBatch = async (batch: Target[]) => {
		const B = batch.length;
		const slot = batch.map(slotFor);
		if (M === N) filled += B;
		batch.forEach((t, b) => (slotNode[slot[b]] = t.node));
		const g = await backend.zeros(B);
		const injectAt = (layer: number) => batch.flatMap((t, b) => (t.layer === layer ? [{ b, pos: t.pos, vector: t.inject }] : []));
		let started = false;
		const top = injectAt(L);
		if (top.length) {
			await backend.inject(g, top);
			started = true;
		}
		for (let l = L - 1; l >= 0; l--) {
			if (started) {
				await backend.contract(g, l);
				await backend.skip(g, l);
			}
			const here = injectAt(l);
			if (here.length) {
				await backend.inject(g, here);
				started = true;
			}
			if (started) await backend.attention(g, l);
		}
		await backend.contract(g, -1);
		const outs = await backend.results(g);
		backend.release?.(g);
		for (let l = 0; l < L; l++) {
			const out = outs[l + 1];
			if (!out) continue; // above every target of this batch: no edges
			const src = ctx.layers[l].sources;
			const n = src.pos.length;
			for (let b = 0; b < B; b++) {
				const row = slot[b] * nSrc;
				for (let s = 0; s < src.nFeatures; s++) rows[row + featureStart[l] + s] = out[b * n + s];
				for (let p = 0; p < P; p++) rows[row + N + l * P + p] = out[b * n + src.nFeatures + p];
				for (let p = 0; p < P; p++) rowBias[slot[b]] += out[b * n + src.nFeatures + P + p];
			}
		}
		const tok = outs[0];
		for (let b = 0; b < B; b++) for (let p = 0; p < P; p++) rows[slot[b] * nSrc + N + L * P + p] = tok[b * P + p];
		opts.onProgress?.(filled, total);
	};
	const inBatches = async (ts: Target[]) => {
		for (let i = 0; i < ts.length; i += batchSize) await runBatch(ts.slice(i, i + batchSize));
	};

	const visited = new Uint8Array(N);
	if (M === N) {
		// Every feature: from the top of the network down, so a batch spans few layers.
		const all = [...logits.map((_, k) => logitTarget(k))];
		for (let i = N - 1; i >= 0; i--) all.push(featureTarget(i));
		await inBatches(all);
		visited.fill(1);
	} else {
		await inBatches(logits.map((_, k) => logitTarget(k)));
		const interval = Math.max(1, opts.updateInterval ?? 4);
		let nVisited = 0;
		while (nVisited < M) {
			const inf = partialInfluence(rows, slotNode, filled, nSrc, K, logits);
			const pending: number[] = [];
			for (let i = 0; i < N; i++) if (!visited[i]) pending.push(i);
			pending.sort((a, b) => inf[b] - inf[a] || a - b);
			const queue = pending.slice(0, Math.min(interval * batchSize, M - nVisited));
			for (const i of queue) visited[i] = 1;
			nVisited += queue.length;
			await inBatches(queue.map(featureTarget));
		}
	}

	// Rows in graph order (kept features ascending, then logits), columns over the kept features only.
	const kept = Int32Array.from({ length: N }, (_, i) => i).filter((i) => visited[i]);
	const col = new Int32Array(N).fill(-1);
	kept.forEach((i, c) => (col[i] = c));
	const nSources = M + L * P + P;
	const nTargets = M + K;
	const slotOf = new Int32Array(nSrc + K).fill(-1);
	for (let s = 0; s < filled; s++) slotOf[slotNode[s]] = s;
	const edges = M === N ? rows : new Float32Array(nTargets * nSources);
	const bias = new Float64Array(nTargets);
	const dropped = new Float64Array(nTargets);
	/** What the affine model's constant terms (an export's biases, linear-model.ts) add to target r's input. */
	const constantOf = (r: number) => {
		const c = ctx.constants;
		if (!c) return 0;
		let v = 0;
		if (r < M) {
			const f = features[kept[r]];
			const t = transcoders[f.layer];
			for (let d = 0; d < dim; d++) v += t.wEnc[d * t.dSae + f.feature] * c.mlpIn[f.layer][f.pos * dim + d];
		} else for (let d = 0; d < dim; d++) v += logits[r - M].vector[d] * c.final[d];
		return v;
	};
	for (let r = 0; r < nTargets; r++) {
		const isFeature = r < M;
		const s = slotOf[isFeature ? kept[r] : nSrc + (r - M)];
		bias[r] = rowBias[s] + (isFeature ? transcoders[features[kept[r]].layer].bEnc[features[kept[r]].feature] : 0) + constantOf(r);
		if (M === N) {
			if (s !== r) throw new Error(`attribution: row ${r} landed in slot ${s}`);
			continue;
		}
		const src = s * nSrc;
		const dst = r * nSources;
		let d = 0;
		for (let i = 0; i < N; i++) {
			const v = rows[src + i];
			if (col[i] >= 0) edges[dst + col[i]] = v;
			else d += v;
		}
		dropped[r] = d;
		edges.set(rows.subarray(src + N, src + nSrc), dst + M);
	}
	return { edges, bias, dropped, kept, nSources, nTargets };
}

/**
 * circuit-tracer's compute_partial_influences: the logits' probabilities pushed back through the
 * rows computed so far (|row| normalised to sum 1), summed over path lengths. Unvisited features
 * receive influence but pass none on (they have no row yet).
 */
function partialInfluence(
	rows: Float32Array,
	slotNode: Int32Array,
	filled: number,
	nSrc: number,
	K: number,
	logits: SalientLogit[]
): Float64Array {
	const n = nSrc + K;
	const norm = new Float64Array(filled * nSrc);
	for (let s = 0; s < filled; s++) {
		let sum = 0;
		for (let j = 0; j < nSrc; j++) sum += Math.abs(rows[s * nSrc + j]);
		const inv = 1 / Math.max(sum, 1e-8);
		for (let j = 0; j < nSrc; j++) norm[s * nSrc + j] = Math.abs(rows[s * nSrc + j]) * inv;
	}
	let prod = new Float64Array(n);
	logits.forEach((l, k) => (prod[nSrc + k] = l.prob));
	const influence = new Float64Array(n);
	for (let iter = 0; iter < 1024; iter++) {
		const next = new Float64Array(n);
		let any = false;
		for (let s = 0; s < filled; s++) {
			const c = prod[slotNode[s]];
			if (c === 0) continue;
			for (let j = 0; j < nSrc; j++) {
				const a = norm[s * nSrc + j];
				if (a) {
					next[j] += c * a;
					any = true;
				}
			}
		}
		if (!any) return influence;
		for (let i = 0; i < n; i++) influence[i] += next[i];
		prod = next;
	}
	throw new Error('attribution: influence did not converge (the graph has a cycle)');
}

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
	/** [nTargets × nSources], row = target (features, then logits), column = source (features, errors, tokens). */
	edges: Float32Array;
	/** The constant term of each target's input: b_enc (features) plus every b_dec's direct effect. */
	bias: Float64Array;
	nSources: number;
	nTargets: number;
}

export interface EdgeOptions {
	batchSize?: number;
	onProgress?: (done: number, total: number) => void;
}

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
	const nSources = N + L * P + P;
	const nTargets = N + logits.length;
	const edges = new Float32Array(nTargets * nSources);
	const bias = new Float64Array(nTargets);
	const batchSize = Math.max(1, opts.batchSize ?? 64);
	// Features are listed layer by layer, so layer l's feature sources are one contiguous range.
	const featureStart = new Int32Array(L + 1);
	for (const f of features) featureStart[f.layer + 1]++;
	for (let l = 0; l < L; l++) featureStart[l + 1] += featureStart[l];

	// Targets from the top of the network down, so a batch spans few layers.
	type Target = { row: number; layer: number; inject: Injection['vector']; pos: number };
	const targets: Target[] = logits.map((lg, k) => ({
		row: N + k,
		layer: L,
		pos: P - 1,
		inject: Float64Array.from(lg.vector, (v, i) => v * ctx.finalScale[i])
	}));
	for (let i = N - 1; i >= 0; i--) {
		const f = features[i];
		const t = transcoders[f.layer];
		const scale = ctx.layers[f.layer].ffnScale;
		const v = new Float64Array(dim);
		for (let d = 0; d < dim; d++) v[d] = scale[f.pos * dim + d] * t.wEnc[d * t.dSae + f.feature];
		targets.push({ row: i, layer: f.layer, pos: f.pos, inject: v });
	}

	for (let start = 0; start < targets.length; start += batchSize) {
		const batch = targets.slice(start, start + batchSize);
		const B = batch.length;
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
				const row = batch[b].row * nSources;
				for (let s = 0; s < src.nFeatures; s++) edges[row + featureStart[l] + s] = out[b * n + s];
				for (let p = 0; p < P; p++) edges[row + N + l * P + p] = out[b * n + src.nFeatures + p];
				for (let p = 0; p < P; p++) bias[batch[b].row] += out[b * n + src.nFeatures + P + p];
			}
		}
		const tok = outs[0];
		for (let b = 0; b < B; b++) for (let p = 0; p < P; p++) edges[batch[b].row * nSources + N + L * P + p] = tok[b * P + p];
		opts.onProgress?.(Math.min(start + B, targets.length), targets.length);
	}
	for (let i = 0; i < N; i++) bias[i] += transcoders[features[i].layer].bEnc[features[i].feature];
	return { edges, bias, nSources, nTargets };
}

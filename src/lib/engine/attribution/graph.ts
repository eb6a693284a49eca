/**
 * An attribution graph for one prompt on a llama2.c model or an export whose weights were traced
 * from its graph (model/onnx/decoder-weights.ts): the frozen forward, the replacement
 * model's nodes, the salient logits and the edges, in circuit-tracer's node order
 *
 *   [active features (layer, pos, feature order) | errors (layer-major, L·P) | tokens (P) | logits (K)]
 *
 * with, for every target (feature or logit), `input` — its pre-activation, or its demeaned logit —
 * and `bias`, the constant term, so that input = Σ incoming edges + bias (completeness) can be
 * checked from the graph alone.
 */
import type { DecoderWeights } from './exported-shape';
import { cpuBackend, type BackwardBackend } from './backend';
import { computeEdges, type EdgeOptions } from './edges';
import { frozenForward, type FrozenForward } from './frozen-forward';
import { linearContext, type LinearContext } from './linear-model';
import { buildReplacement, type ActiveFeature } from './replacement';
import { salientLogits } from './salient-logits';
import type { Transcoder } from './transcoder';

export interface GraphLogit {
	token: number;
	prob: number;
}

export interface AttributionGraph {
	tokens: number[];
	nLayers: number;
	nPos: number;
	features: ActiveFeature[];
	logits: GraphLogit[];
	/** [nTargets × nSources]: targets are features then logits; sources features, errors, tokens. */
	edges: Float32Array;
	/** Per target: the sum its incoming edges reach (pre-activation / demeaned logit) and its constant term. */
	input: Float64Array;
	bias: Float64Array;
	/**
	 * Per target: what active features left out of the graph (`maxFeatureNodes`) add to its input;
	 * all zero when every active feature is a node. input = Σ edges + bias + dropped.
	 */
	dropped: Float64Array;
	/** Active features found on the prompt, kept as nodes or not. */
	nActive: number;
	nSources: number;
	nTargets: number;
	/** |error[l, p]|, [L · P], for the view (an error node's size) and for reading how much the transcoders miss. */
	errorNorm: Float64Array;
	settings: { maxNLogits: number; desiredLogitProb: number; batchSize: number; maxFeatureNodes: number };
}

export interface AttributeOptions extends EdgeOptions {
	maxNLogits?: number;
	desiredLogitProb?: number;
	/** Another machine for the backward passes (the WGSL one); the TypeScript path by default. */
	backend?: (ctx: LinearContext) => BackwardBackend<unknown> | Promise<BackwardBackend<unknown>>;
}

export interface Attribution {
	graph: AttributionGraph;
	forward: FrozenForward;
	context: LinearContext;
}

export async function attribute(
	w: DecoderWeights,
	tokens: number[],
	transcoders: Transcoder[],
	opts: AttributeOptions = {}
): Promise<Attribution> {
	const maxNLogits = opts.maxNLogits ?? 10;
	const desiredLogitProb = opts.desiredLogitProb ?? 0.95;
	const batchSize = opts.batchSize ?? 64;
	const fwd = frozenForward(w, tokens);
	const rep = buildReplacement(fwd, transcoders);
	const ctx = linearContext(w, fwd, rep);
	const { dim, nPos: P, nLayers: L } = fwd;
	const V = w.config.vocabSize;
	const logits = salientLogits(fwd.logits.subarray((P - 1) * V, P * V), w.classifier, dim, maxNLogits, desiredLogitProb);
	const backend = await (opts.backend ?? cpuBackend)(ctx);
	const rows = await computeEdges(ctx, backend, rep.features, logits, rep.transcoders, {
		batchSize,
		maxFeatureNodes: opts.maxFeatureNodes,
		updateInterval: opts.updateInterval,
		onProgress: opts.onProgress
	});
	const features = Array.from(rows.kept, (i) => rep.features[i]);
	const input = new Float64Array(rows.nTargets);
	features.forEach((f, i) => (input[i] = f.preActivation));
	logits.forEach((lg, k) => (input[features.length + k] = lg.demeanedLogit));
	const errorNorm = new Float64Array(L * P);
	for (let l = 0; l < L; l++)
		for (let p = 0; p < P; p++) {
			let s = 0;
			for (let d = 0; d < dim; d++) s += rep.errors[l][p * dim + d] ** 2;
			errorNorm[l * P + p] = Math.sqrt(s);
		}
	return {
		graph: {
			tokens: [...tokens],
			nLayers: L,
			nPos: P,
			features,
			nActive: rep.features.length,
			logits: logits.map(({ token, prob }) => ({ token, prob })),
			edges: rows.edges,
			input,
			bias: rows.bias,
			dropped: rows.dropped,
			nSources: rows.nSources,
			nTargets: rows.nTargets,
			errorNorm,
			settings: { maxNLogits, desiredLogitProb, batchSize, maxFeatureNodes: features.length }
		},
		forward: fwd,
		context: ctx
	};
}

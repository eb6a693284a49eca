/**
 * One call from a prompt to Neuronpedia's graph JSON: attribute, prune if asked, write the file
 * object. The CLI uses it; the engine facade (worker) is meant to, with ORT's device for the
 * WGSL backend, so the app and the command line write the same files.
 */
import type { DecoderWeights } from './exported-shape';
import { attribute, type AttributeOptions, type AttributionGraph } from './graph';
import { gpuBackend } from './gpu-backend';
import { toGraphFile, toNeuronpedia, type GraphFile } from './neuronpedia-graph';
import { pruneGraph } from './prune';
import type { Transcoder } from './transcoder';

export interface GraphJsonOptions extends Omit<AttributeOptions, 'backend'> {
	slug: string;
	scan: string;
	prompt: string;
	decode: (token: number) => string;
	/** Prune with these thresholds (circuit-tracer: 0.8, 0.98); unpruned without. */
	prune?: { nodeThreshold: number; edgeThreshold: number };
	/** Run the backward passes on this device's WGSL kernels; the TypeScript path without. */
	device?: GPUDevice;
}

export async function buildGraphJson(
	w: DecoderWeights,
	tokens: number[],
	transcoders: Transcoder[],
	o: GraphJsonOptions
): Promise<{ graph: AttributionGraph; file: GraphFile; json: Record<string, unknown> }> {
	let dispose = () => {};
	const backend = o.device
		? async (ctx: Parameters<NonNullable<AttributeOptions['backend']>>[0]) => {
				const b = await gpuBackend(o.device!, ctx);
				dispose = b.dispose;
				return b as never;
			}
		: undefined;
	try {
		const { graph } = await attribute(w, tokens, transcoders, { ...o, backend });
		const prune = o.prune ? { ...pruneGraph(graph, o.prune.nodeThreshold, o.prune.edgeThreshold), ...o.prune } : undefined;
		const file = toGraphFile(graph, { slug: o.slug, scan: o.scan, prompt: o.prompt, decode: o.decode, prune });
		const json = toNeuronpedia(file);
		(json.metadata as Record<string, unknown>).generation_settings = {
			max_n_logits: graph.settings.maxNLogits,
			desired_logit_prob: graph.settings.desiredLogitProb,
			batch_size: graph.settings.batchSize,
			max_feature_nodes: graph.settings.maxFeatureNodes
		};
		return { graph, file, json };
	} finally {
		dispose();
	}
}

/**
 * A feature card and a Neuronpedia feature page, each as the other: what Loupe knows of a feature
 * (logits, nearest features, density, histogram, top examples as token pieces with per-token
 * activations, explanations) as Neuronpedia's feature shape (sae/neuronpedia.ts writes its JSON),
 * and a saved Neuronpedia page as a card Loupe can show offline. Also the (modelId, source id) pair
 * Neuronpedia files an SAE under: its own id where Neuronpedia hosts it, else one made up for Loupe.
 */
import type { HookName } from '../model/hooks';
import { neuronpediaSourceId, splitNeuronpediaId, type NeuronpediaFeature } from './neuronpedia';
import type { ParsedExplanation } from './labels';
import type { RankedItem } from './features';
import type { FeatureLabel } from '../store/db';

/** A feature card's contents (what the explorer's `feature` returns, and what an imported page shows). */
export interface FeatureDetails {
	feature: number;
	activations: number[]; // at each token of the last analysed text
	positiveLogits: (RankedItem & { piece: string })[];
	negativeLogits: (RankedItem & { piece: string })[];
	nearest: RankedItem[];
	label: FeatureLabel | null;
	/** How often it fires, before any corpus run too: from the corpus run, else the SAE's sparsity.safetensors. */
	density: { value: number; source: 'corpus' | 'sparsity.safetensors' | 'Neuronpedia' } | null;
	/** Where Neuronpedia files this SAE ("gpt2-small/8-res-jb"), when it does. */
	neuronpediaId?: string;
	/** From the corpus run (or the imported page), when there is one. */
	corpus: {
		name: string;
		density: number; // fraction of tokens where it fires
		maxAct: number;
		histogram: { from: number; to: number; count: number }[];
		examples: TopExample[];
	} | null;
	/** Set when the card is an imported Neuronpedia page, not a feature of the loaded SAE. */
	imported?: { modelId: string; layer: string; file: string };
}

export interface TopExample {
	pieces: string[];
	activations: number[];
	position: number;
	value: number;
}

/** Neuronpedia's (modelId, source id) for an SAE: its own where it has one, else `{layer}-loupe-{width}` under the model's id. */
export function neuronpediaSource(
	sae: { neuronpediaId?: string; hookName: HookName; dSae: number },
	modelId: string
): { modelId: string; layer: string } {
	const own = sae.neuronpediaId ? splitNeuronpediaId(sae.neuronpediaId) : null;
	return own ?? { modelId, layer: neuronpediaSourceId(sae.hookName, `loupe-${sae.dSae}`) };
}

/** A card's feature in Neuronpedia's shape; `histogram` as featureHistogram gives it (bar centres and counts). */
export function toNeuronpediaFeature(
	d: FeatureDetails,
	source: { modelId: string; layer: string },
	hookName: HookName,
	histogram?: { values: number[]; heights: number[] }
): NeuronpediaFeature {
	// One's own label goes first (typeName "loupe-user"), then every imported explanation.
	const l = d.label;
	const explanations: ParsedExplanation[] = l
		? [
				...(l.source === 'user' || !l.explanations.length
					? [{ feature: d.feature, description: l.description, typeName: l.source === 'user' ? 'loupe-user' : undefined }]
					: []),
				...l.explanations
			]
		: [];
	return {
		modelId: source.modelId,
		layer: source.layer,
		index: d.feature,
		hookName,
		density: d.density?.value,
		maxActApprox: d.corpus?.maxAct,
		histogram,
		positive: d.positiveLogits.map((x) => ({ token: x.piece, value: x.value })),
		negative: d.negativeLogits.map((x) => ({ token: x.piece, value: x.value })),
		nearest: d.nearest.map((x) => ({ id: x.id, value: x.value })),
		examples: (d.corpus?.examples ?? []).map((ex) => ({ tokens: ex.pieces, values: ex.activations })),
		explanations
	};
}

/** A saved Neuronpedia page as a card (offline: no prompt activations, nothing to steer). */
export function fromNeuronpediaFeature(f: NeuronpediaFeature, file: string): FeatureDetails {
	const examples = f.examples.map((ex) => {
		const value = Math.max(0, ...ex.values);
		return { pieces: ex.tokens, activations: ex.values, position: ex.values.indexOf(value), value };
	});
	const maxAct = f.maxActApprox ?? Math.max(0, ...examples.map((e) => e.value));
	const density = f.density ?? null;
	return {
		feature: f.index,
		activations: [],
		positiveLogits: f.positive.map((x, i) => ({ id: i, value: x.value, piece: x.token })),
		negativeLogits: f.negative.map((x, i) => ({ id: i, value: x.value, piece: x.token })),
		nearest: f.nearest,
		label: f.explanations.length
			? {
					sae: `neuronpedia:${f.modelId}/${f.layer}`,
					feature: f.index,
					description: f.explanations[0].description,
					source: 'neuronpedia',
					explanations: f.explanations
				}
			: null,
		density: density === null ? null : { value: density, source: 'Neuronpedia' },
		// A page Loupe wrote for an SAE Neuronpedia does not host (source id `{layer}-loupe-{width}`) links nowhere.
		neuronpediaId: /-loupe-\d+$/.test(f.layer) ? undefined : `${f.modelId}/${f.layer}`,
		corpus:
			examples.length || f.histogram || density !== null
				? {
						name: `Neuronpedia's dataset (${file})`,
						density: density ?? 0,
						maxAct,
						// Neuronpedia gives bar centres only: each bar is labelled by its centre.
						histogram: f.histogram ? f.histogram.values.map((v, i) => ({ from: v, to: v, count: f.histogram!.heights[i] })) : [],
						examples
					}
				: null,
		imported: { modelId: f.modelId, layer: f.layer, file }
	};
}

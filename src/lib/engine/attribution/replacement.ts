/**
 * The local replacement model's nodes on one prompt: each MLP replaced by its transcoder, plus an
 * error node that makes the MLP's output exact,
 *
 *   mlp_out[l, p] = Σ_f act[l,p,f] · W_dec[f] + b_dec + W_skip · mlp_in[l, p] + error[l, p],
 *
 * so the replacement model, with attention and norms frozen (`frozen-forward.ts`), computes exactly
 * what the real model computes. Active features are listed in (layer, position, feature) order,
 * circuit-tracer's order for its node list.
 */
import type { FrozenForward } from './frozen-forward';
import { activate, checkTranscoder, preActivations, reconstruct, type Transcoder } from './transcoder';
import { LoupeError } from '../errors';

export interface ActiveFeature {
	layer: number;
	pos: number;
	feature: number;
	activation: number;
	/** Its pre-activation W_enc[:, f] · mlp_in + b_enc[f]: what its incoming edges add up to. */
	preActivation: number;
}

export interface ReplacementState {
	transcoders: Transcoder[];
	features: ActiveFeature[];
	/** error[l][p · dim + j]: what each transcoder misses of its MLP's output. */
	errors: Float64Array[];
}

export function buildReplacement(fwd: FrozenForward, transcoders: Transcoder[]): ReplacementState {
	const { nLayers, nPos: P, dim } = fwd;
	if (transcoders.length !== nLayers)
		throw new LoupeError(
			'sae-mismatch',
			`The attribution needs one transcoder per layer: the model has ${nLayers} layers, ${transcoders.length} transcoders were given.`,
			'Load (or train) a transcoder for every layer.'
		);
	const byLayer = [...transcoders].sort((a, b) => a.layer - b.layer);
	byLayer.forEach((t, l) => {
		if (t.layer !== l)
			throw new LoupeError(
				'sae-mismatch',
				`No transcoder for layer ${l} (the set has layers ${byLayer.map((u) => u.layer).join(', ')}).`,
				'Load a transcoder for every layer.'
			);
		checkTranscoder(t, dim);
	});
	const features: ActiveFeature[] = [];
	const errors: Float64Array[] = [];
	for (let l = 0; l < nLayers; l++) {
		const t = byLayer[l];
		const err = new Float64Array(P * dim);
		for (let p = 0; p < P; p++) {
			const x = fwd.mlpIn[l].subarray(p * dim, (p + 1) * dim);
			const pre = preActivations(t, x);
			const act = activate(t, pre);
			for (let f = 0; f < t.dSae; f++)
				if (act[f] !== 0) features.push({ layer: l, pos: p, feature: f, activation: act[f], preActivation: pre[f] });
			const rec = reconstruct(t, x, act);
			for (let j = 0; j < dim; j++) err[p * dim + j] = fwd.mlpOut[l][p * dim + j] - rec[j];
		}
		errors.push(err);
	}
	return { transcoders: byLayer, features, errors };
}

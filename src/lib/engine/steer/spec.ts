/**
 * A steering setup: features of the loaded SAE, each added with a strength or clamped to a target
 * activation, at the SAE's hook, at every position (the prompt's and the generated ones).
 * `steerReference` is the plain TypeScript version of shaders/steer.wgsl.
 */
import type { Sae } from '../sae/sae';

export interface SteerFeature {
	/** An SAE feature, or -1 for a saved steering vector (`vector`). */
	feature: number;
	/** A saved steering vector's id (add mode only), instead of an SAE feature. */
	vector?: string;
	mode: 'add' | 'clamp';
	value: number; // add: strength; clamp: target activation (0 ablates)
	normalize: boolean; // add: use the unit-normalised decoder row
}

export interface SteeringSetup {
	features: SteerFeature[];
	steerSpecial: boolean; // also steer BOS (position 0)
}

export const noSteering: SteeringSetup = { features: [], steerSpecial: false };

/** The direction each spec writes along: W_dec[f], unit-normalised when asked (add mode only). */
export function steerDirections(sae: Sae, specs: SteerFeature[]): Float32Array {
	const { dIn } = sae.cfg;
	const out = new Float32Array(specs.length * dIn);
	specs.forEach((s, j) => {
		const row = sae.w.wDec.subarray(s.feature * dIn, (s.feature + 1) * dIn);
		const norm = s.mode === 'add' && s.normalize ? Math.sqrt(row.reduce((a, x) => a + x * x, 0)) || 1 : 1;
		for (let i = 0; i < dIn; i++) out[j * dIn + i] = row[i] / norm;
	});
	return out;
}

/**
 * resid [tokens, d] in place; acts [tokens, d_sae] (the SAE's encoding of resid, needed for clamp);
 * `skipPosition`: the row left alone (BOS), or -1.
 */
export function steerReference(
	sae: Sae,
	resid: Float32Array,
	tokens: number,
	specs: SteerFeature[],
	acts: Float32Array | null,
	skipPosition: number
) {
	const { dIn, dSae } = sae.cfg;
	const dirs = steerDirections(sae, specs);
	for (let t = 0; t < tokens; t++) {
		if (t === skipPosition) continue;
		specs.forEach((s, j) => {
			const c = s.mode === 'add' ? s.value : s.value - acts![t * dSae + s.feature];
			for (let i = 0; i < dIn; i++) resid[t * dIn + i] += c * dirs[j * dIn + i];
		});
	}
}

/**
 * A steering setup: features of the loaded SAE (or saved steering vectors), each applied at its
 * hook with one of four methods, over a scope of positions (steer/scope.ts). `steerRowsReference`
 * is the plain TypeScript version of shaders/steer.wgsl, written from Neuronpedia's formulas (see
 * the kernel's opening comment for the source).
 */
import type { Sae } from '../sae/sae';
import { inWindow, type RowWindow, type SteerScope } from './scope';

/**
 * add: h += value · dir; clamp: the SAE activation set to value (h += (value − act) · dir);
 * orthogonal: h → (I − P)h + value · P h with P = û ûᵀ (Neuronpedia's ORTHOGONAL_DECOMP: 1 leaves h,
 * 0 removes its component along the direction); cap: the projection h · û capped at value from above
 * (Neuronpedia's PROJECTION_CAP, max = strength, no minimum).
 */
export type SteerMode = 'add' | 'clamp' | 'orthogonal' | 'cap';
export const steerModes: readonly SteerMode[] = ['add', 'clamp', 'orthogonal', 'cap'];

export interface SteerFeature {
	/** An SAE feature, or -1 for a saved steering vector (`vector`). */
	feature: number;
	/** A saved steering vector's id, instead of an SAE feature (any method but clamp). */
	vector?: string;
	mode: SteerMode;
	value: number; // add: strength; clamp: target activation (0 ablates); orthogonal: the factor on the component; cap: the cap
	normalize: boolean; // add: use the unit-normalised direction (orthogonal and cap always do)
	/** Where in the sequence it acts; absent: every position. */
	scope?: SteerScope;
}

export interface SteeringSetup {
	features: SteerFeature[];
	steerSpecial: boolean; // also steer BOS (position 0)
}

export const noSteering: SteeringSetup = { features: [], steerSpecial: false };

/** One direction's rule in one forward: its method, the SAE activation it reads (clamp), its value, and the rows it steers (absent: all). */
export interface SteerRow {
	mode: SteerMode;
	feature: number;
	value: number;
	rows?: RowWindow;
}

/** An entry as one forward applies it: the rows of that forward it steers (scopeRows). */
export type SteerAt = SteerFeature & { rows?: RowWindow };

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
 * The kernel's reference. resid [tokens, d] in place; dirs [specs, d]; acts [tokens, dSae] (the
 * SAE's encoding of the unsteered rows, read by clamp only); `skipPosition`: a row left alone, or -1.
 * Entries apply one after the other, each to the row as the ones before left it (as Neuronpedia's
 * engine applies a layer's operations), so orthogonal and cap see earlier edits.
 */
export function steerRowsReference(
	resid: Float32Array,
	tokens: number,
	d: number,
	dirs: Float32Array,
	specs: SteerRow[],
	acts: Float32Array | null,
	dSae: number,
	skipPosition: number
) {
	for (let t = 0; t < tokens; t++) {
		if (t === skipPosition) continue;
		const h = resid.subarray(t * d, (t + 1) * d);
		specs.forEach((s, j) => {
			if (!inWindow(s.rows, t)) return;
			const dir = dirs.subarray(j * d, (j + 1) * d);
			let c: number;
			if (s.mode === 'add') c = s.value;
			else if (s.mode === 'clamp') c = s.value - acts![t * dSae + s.feature];
			else {
				let hv = 0;
				let vv = 0;
				for (let i = 0; i < d; i++) {
					hv += h[i] * dir[i];
					vv += dir[i] * dir[i];
				}
				if (vv === 0) return; // no direction: nothing to project on
				const proj = hv / Math.sqrt(vv); // h · û
				// Along û: orthogonal adds (value − 1)·proj, cap adds min(proj, value) − proj; c is per unit of dir.
				c = (s.mode === 'orthogonal' ? (s.value - 1) * proj : Math.min(proj, s.value) - proj) / Math.sqrt(vv);
			}
			for (let i = 0; i < d; i++) h[i] += c * dir[i];
		});
	}
}

/** steerRowsReference for SAE features: their decoder rows, the SAE's activations for clamp. */
export function steerReference(
	sae: Sae,
	resid: Float32Array,
	tokens: number,
	specs: SteerAt[],
	acts: Float32Array | null,
	skipPosition: number
) {
	const { dIn, dSae } = sae.cfg;
	steerRowsReference(resid, tokens, dIn, steerDirections(sae, specs), specs, acts, dSae, skipPosition);
}

/**
 * Steering vectors that are not SAE features: a contrast vector is the mean residual at a hook
 * over one set of prompts minus the mean over another ("Love" − "Hate", as in activation
 * addition). Saved per model in IndexedDB and reused like a feature: `resid += strength · v`
 * (or the unit vector) at every position at the vector's hook.
 */
export interface SteeringVector {
	id: string; // short, for the URL: steer=v<id>:add:4
	name: string;
	model: string;
	hook: string;
	values: Float32Array; // [d_model]
	positive: string[];
	negative: string[];
	createdAt: string;
}

/** Running sum of residual rows (BOS left out), for a mean over many prompts. */
export class ResidualMean {
	readonly sum: Float64Array;
	count = 0;
	constructor(readonly d: number) {
		this.sum = new Float64Array(d);
	}
	/** rows: [tokens, d]; the first `skip` rows (BOS) are left out. */
	add(rows: Float32Array, tokens: number, skip = 1) {
		for (let t = skip; t < tokens; t++) {
			for (let i = 0; i < this.d; i++) this.sum[i] += rows[t * this.d + i];
			this.count++;
		}
	}
	mean(): Float32Array {
		return Float32Array.from(this.sum, (x) => x / Math.max(1, this.count));
	}
}

export function contrast(positive: Float32Array, negative: Float32Array): Float32Array {
	return positive.map((x, i) => x - negative[i]);
}

export function vectorNorm(v: Float32Array): number {
	return Math.sqrt(v.reduce((a, x) => a + x * x, 0));
}

export function newVectorId(): string {
	return Math.random().toString(36).slice(2, 8);
}

/** JSON-safe form (for preset files). */
export function vectorToJson(v: SteeringVector) {
	return { ...v, values: Array.from(v.values) };
}

export function vectorFromJson(j: ReturnType<typeof vectorToJson>): SteeringVector {
	if (
		!j ||
		typeof j !== 'object' ||
		typeof j.id !== 'string' ||
		!Array.isArray(j.values) ||
		!j.values.every((x) => typeof x === 'number') ||
		typeof j.hook !== 'string'
	)
		throw new Error('a steering vector in the file is missing its id or hook, or its values are not all numbers');
	return { ...j, values: Float32Array.from(j.values) };
}

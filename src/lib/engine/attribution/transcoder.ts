/**
 * The transcoder the attribution reads: a sparse map from one layer's MLP input
 * (`blocks.L.hook_mlp_in`, the normalised residual) to that MLP's output (`blocks.L.hook_mlp_out`).
 * A plain object so every source can produce it: the Gemma Scope 2 / SAELens loaders, the trainer,
 * or a test's seeded random weights.
 *
 *   pre  = x · W_enc + b_enc                       (W_enc [d_in, d_sae], as SAELens stores it)
 *   act  = ReLU(pre), or JumpReLU: pre where pre > threshold, else 0, or TopK: the k largest ReLU(pre)
 *   out  = act · W_dec + b_dec + W_skip · x        (W_dec [d_sae, d_out]; W_skip [d_out, d_in])
 *
 * W_skip is (out, in) so that `out = x @ W_skip.T`, as SAELens's skip transcoder and circuit-tracer
 * compute it; a file storing it [d_in, d_out] must be transposed by its loader.
 */
import { LoupeError } from '../errors';

export interface Transcoder {
	layer: number;
	dIn: number;
	dSae: number;
	dOut: number;
	wEnc: Float32Array; // [dIn, dSae]
	bEnc: Float32Array; // [dSae]
	wDec: Float32Array; // [dSae, dOut]
	bDec: Float32Array; // [dOut]
	threshold?: Float32Array; // [dSae]: JumpReLU when present, ReLU otherwise
	/** TopK: only the k largest (positive) pre-activations stay, per position. */
	k?: number;
	wSkip?: Float32Array; // [dOut, dIn]: the affine skip connection
	/** For the graph's metadata and the feature card: where these weights came from. */
	name?: string;
}

/** Throws a worded error when a transcoder's shapes disagree with each other or with the model. */
export function checkTranscoder(t: Transcoder, dModel: number) {
	const bad = (what: string) => {
		throw new LoupeError(
			'sae-mismatch',
			`The transcoder for layer ${t.layer}${t.name ? ` (${t.name})` : ''} ${what}.`,
			'Load transcoders made for this model (d_in and d_out equal to its d_model), one per layer.'
		);
	};
	if (t.dIn !== dModel || t.dOut !== dModel) bad(`maps ${t.dIn} → ${t.dOut} values, but the model's d_model is ${dModel}`);
	const sizes: [string, Float32Array | undefined, number][] = [
		['W_enc', t.wEnc, t.dIn * t.dSae],
		['b_enc', t.bEnc, t.dSae],
		['W_dec', t.wDec, t.dSae * t.dOut],
		['b_dec', t.bDec, t.dOut],
		['threshold', t.threshold, t.dSae],
		['W_skip', t.wSkip, t.dOut * t.dIn]
	];
	for (const [name, a, n] of sizes) if (a && a.length !== n) bad(`has ${name} of ${a.length} values where ${n} were expected`);
}

/** Pre-activations of every latent for one input row x [dIn]. */
export function preActivations(t: Transcoder, x: ArrayLike<number>): Float64Array {
	const pre = Float64Array.from(t.bEnc);
	for (let i = 0; i < t.dIn; i++) {
		const xi = x[i];
		if (xi === 0) continue;
		const row = i * t.dSae;
		for (let f = 0; f < t.dSae; f++) pre[f] += xi * t.wEnc[row + f];
	}
	return pre;
}

/** The activation function: JumpReLU keeps pre only above its threshold (strictly, as SAELens). */
export function activate(t: Transcoder, pre: Float64Array): Float64Array {
	const act = new Float64Array(pre.length);
	for (let f = 0; f < pre.length; f++) {
		const th = t.threshold ? t.threshold[f] : 0;
		act[f] = pre[f] > th && pre[f] > 0 ? pre[f] : 0;
	}
	if (t.k !== undefined && t.k < pre.length) {
		// TopK: on a given prompt the kept set is fixed, so the attribution treats it like a mask.
		const order = Array.from(act.keys()).sort((a, b) => act[b] - act[a] || a - b);
		for (const f of order.slice(t.k)) act[f] = 0;
	}
	return act;
}

/** The transcoder's output for input x given its activations: act · W_dec + b_dec + W_skip · x. */
export function reconstruct(t: Transcoder, x: ArrayLike<number>, act: ArrayLike<number>): Float64Array {
	const out = Float64Array.from(t.bDec);
	for (let f = 0; f < t.dSae; f++) {
		const a = act[f];
		if (a === 0) continue;
		const row = f * t.dOut;
		for (let j = 0; j < t.dOut; j++) out[j] += a * t.wDec[row + j];
	}
	if (t.wSkip)
		for (let j = 0; j < t.dOut; j++) {
			let s = 0;
			const row = j * t.dIn;
			for (let i = 0; i < t.dIn; i++) s += t.wSkip[row + i] * x[i];
			out[j] += s;
		}
	return out;
}

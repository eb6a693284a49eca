/**
 * Picks an SAE's (or a transcoder's) weights out of a file's named tensors, checking every shape
 * against the config. A transcoder's decoder is d_out wide; its skip connection, where the format
 * has one, is read by the format's reader (its orientation differs between formats).
 */
import { LoupeError } from '../../errors';
import { dOutOf, type SaeConfig, type SaeWeights } from '../config';
import type { NamedTensor } from './tensors';

export function takeWeights(
	tensors: Map<string, NamedTensor>,
	cfg: SaeConfig,
	file: string,
	keys: { wEnc: string; wDec: string; bEnc: string; bDec: string; threshold: string },
	opts: { thresholdOptional?: boolean } = {}
): SaeWeights {
	const { dIn, dSae } = cfg;
	const dOut = dOutOf(cfg);
	const sizes = `d_in ${dIn}${cfg.dOut !== undefined ? `, d_out ${dOut}` : ''} and d_sae ${dSae}`;
	const take = (key: string, shape: number[], optional = false): Float32Array | undefined => {
		const t = tensors.get(key);
		if (!t) {
			if (optional) return undefined;
			throw new LoupeError(
				'not-an-sae',
				`${file} has no tensor "${key}" (it has: ${[...tensors.keys()].join(', ') || 'none'}).`,
				'Choose the weights file that belongs to this SAE.'
			);
		}
		if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i]))
			throw new LoupeError(
				'not-an-sae',
				`${file}: "${key}" has shape [${t.shape.join(', ')}], but ${sizes} need [${shape.join(', ')}].`,
				'The weights do not match their config; choose the files of one SAE.'
			);
		return t.data;
	};
	const weights: SaeWeights = {
		wEnc: take(keys.wEnc, [dIn, dSae])!,
		wDec: take(keys.wDec, [dSae, dOut])!,
		bEnc: take(keys.bEnc, [dSae])!,
		bDec: take(keys.bDec, [dOut])!,
		threshold: take(keys.threshold, [dSae], cfg.architecture !== 'jumprelu' || opts.thresholdOptional)
	};
	// SAELens's finetuning scaling factor multiplies activations before decoding: fold it into W_dec.
	const scale = tensors.get('scaling_factor') ?? tensors.get('finetuning_scaling_factor');
	if (scale && scale.data.some((s) => s !== 1)) {
		if (scale.data.length !== dSae)
			throw new LoupeError(
				'not-an-sae',
				`${file}: scaling_factor has ${scale.data.length} entries, expected ${dSae}.`,
				'Choose the files of one SAE.'
			);
		for (let f = 0; f < dSae; f++) for (let i = 0; i < dOut; i++) weights.wDec[f * dOut + i] *= scale.data[f];
	}
	return weights;
}

/** An optional [rows, cols] matrix, shape-checked; `transpose` turns [cols, rows] storage into [rows, cols]. */
export function takeMatrix(
	tensors: Map<string, NamedTensor>,
	key: string,
	file: string,
	shape: [number, number],
	what: string,
	transpose = false
): Float32Array | undefined {
	const t = tensors.get(key);
	if (!t) return undefined;
	const stored = transpose ? [shape[1], shape[0]] : shape;
	if (t.shape.length !== 2 || t.shape[0] !== stored[0] || t.shape[1] !== stored[1])
		throw new LoupeError(
			'not-an-sae',
			`${file}: "${key}" has shape [${t.shape.join(', ')}], but ${what} needs [${stored.join(', ')}].`,
			'The weights do not match their config; choose the files of one transcoder.'
		);
	if (!transpose) return t.data;
	const [r, c] = shape;
	const out = new Float32Array(r * c);
	for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[i * c + j] = t.data[j * r + i];
	return out;
}

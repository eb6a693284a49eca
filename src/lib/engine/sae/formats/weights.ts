/** Picks an SAE's weights out of a file's named tensors, checking every shape against the config. */
import { LoupeError } from '../../errors';
import type { SaeConfig, SaeWeights } from '../config';
import type { NamedTensor } from './tensors';

export function takeWeights(
	tensors: Map<string, NamedTensor>,
	cfg: SaeConfig,
	file: string,
	keys: { wEnc: string; wDec: string; bEnc: string; bDec: string; threshold: string },
	opts: { thresholdOptional?: boolean } = {}
): SaeWeights {
	const { dIn, dSae } = cfg;
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
				`${file}: "${key}" has shape [${t.shape.join(', ')}], but d_in ${dIn} and d_sae ${dSae} need [${shape.join(', ')}].`,
				'The weights do not match their config; choose the files of one SAE.'
			);
		return t.data;
	};
	const weights: SaeWeights = {
		wEnc: take(keys.wEnc, [dIn, dSae])!,
		wDec: take(keys.wDec, [dSae, dIn])!,
		bEnc: take(keys.bEnc, [dSae])!,
		bDec: take(keys.bDec, [dIn])!,
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
		for (let f = 0; f < dSae; f++) for (let i = 0; i < dIn; i++) weights.wDec[f * dIn + i] *= scale.data[f];
	}
	return weights;
}

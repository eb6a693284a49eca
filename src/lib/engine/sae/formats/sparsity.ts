/**
 * `sparsity.safetensors`: one tensor "sparsity" [d_sae], each latent's log10 firing rate
 * (log10(fraction of training tokens it fired on + 1e-10): sae_lens/training/sae_trainer.py
 * _log_feature_sparsity), written next to an SAELens SAE by its trainer and read by
 * SAE.from_pretrained_with_cfg_and_sparsity (pretrained_sae_loaders.py sae_lens_huggingface_loader).
 */
import { LoupeError } from '../../errors';
import { readSafetensors, writeSafetensors } from './safetensors';

export const SPARSITY_EPS = 1e-10;

/** log10 density per latent, checked against the SAE's width. */
export function readSparsity(buf: ArrayBuffer, dSae: number, name = 'sparsity.safetensors'): Float32Array {
	const t = readSafetensors(buf, name).get('sparsity');
	if (!t)
		throw new LoupeError(
			'not-an-sae',
			`${name} has no tensor "sparsity".`,
			'Remove it, or choose the sparsity.safetensors that came with this SAE.'
		);
	if (t.data.length !== dSae)
		throw new LoupeError(
			'sae-mismatch',
			`${name} has ${t.data.length} entries but the SAE has ${dSae} latents.`,
			'Remove it, or choose the sparsity.safetensors that came with this SAE.'
		);
	return t.data;
}

/** From firing counts over `tokens` tokens, as SAELens's trainer writes it. */
export function logSparsityOf(fires: ArrayLike<number>, tokens: number): Float32Array {
	return Float32Array.from({ length: fires.length }, (_, f) => Math.log10((tokens ? fires[f] / tokens : 0) + SPARSITY_EPS));
}

export function writeSparsity(logSparsity: Float32Array): Uint8Array {
	return writeSafetensors({ sparsity: { shape: [logSparsity.length], data: logSparsity } });
}

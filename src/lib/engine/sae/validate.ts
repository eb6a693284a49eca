/** Checks an SAE against the model it is about to run on; a specific error, and nothing half-loaded. */
import { LoupeError } from '../errors';
import { hookBoundary } from '../model/hooks';
import type { SaeConfig } from './config';

export function checkSaeFitsModel(cfg: SaeConfig, model: { name: string; nLayers: number; dModel: number }) {
	try {
		hookBoundary(cfg.hookName, model.nLayers);
	} catch (e) {
		throw new LoupeError('sae-mismatch', `This SAE reads "${cfg.hookName}", which ${model.name} does not have. ${(e as Error).message}`, `Load the model it was trained on${cfg.modelName ? ` (${cfg.modelName})` : ''}, or pick an SAE for ${model.name}.`);
	}
	if (cfg.dIn !== model.dModel)
		throw new LoupeError(
			'sae-mismatch',
			`This SAE reads vectors of width ${cfg.dIn} (d_in), but ${model.name}'s residual stream at ${cfg.hookName} has width ${model.dModel}.`,
			`It was made for ${cfg.modelName ?? 'another model'}: load that model, or pick an SAE made for ${model.name}.`
		);
}

/** Checks an SAE against the model it is about to run on; a specific error, and nothing half-loaded. */
import { LoupeError } from '../errors';
import { canonicalHook, everyHookName } from '../model/hooks';
import type { SaeConfig } from './config';

/**
 * `hooks`: the hooks the model offers (an export's surgery may not find every hook inside a layer);
 * without it, every hook an nLayers model has.
 */
export function checkSaeFitsModel(cfg: SaeConfig, model: { name: string; nLayers: number; dModel: number; hooks?: string[] }) {
	const offered = model.hooks ?? everyHookName(model.nLayers);
	const action = `Load the model it was trained on${cfg.modelName ? ` (${cfg.modelName})` : ''}, or pick an SAE for ${model.name}.`;
	let name: string;
	try {
		name = canonicalHook(cfg.hookName, model.nLayers);
	} catch (e) {
		throw new LoupeError(
			'sae-mismatch',
			`This SAE reads "${cfg.hookName}", which ${model.name} does not have. ${(e as Error).message}`,
			action
		);
	}
	if (!offered.includes(name) && !offered.includes(cfg.hookName))
		throw new LoupeError(
			'sae-mismatch',
			`This SAE reads "${cfg.hookName}", which ${model.name} does not have: graph surgery did not find that hook in this export (the warnings under Hook points say why).`,
			`Pick an SAE at one of the hooks this model offers (e.g. ${offered.find((h) => h.endsWith('resid_pre')) ?? offered[0]}), or another export of the model.`
		);
	if (cfg.dIn !== model.dModel)
		throw new LoupeError(
			'sae-mismatch',
			`This SAE reads vectors of width ${cfg.dIn} (d_in), but ${model.name}'s residual stream at ${cfg.hookName} has width ${model.dModel}.`,
			`It was made for ${cfg.modelName ?? 'another model'}: load that model, or pick an SAE made for ${model.name}.`
		);
}

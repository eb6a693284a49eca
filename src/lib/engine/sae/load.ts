/**
 * Finds the format of a set of SAE files by their names and reads them:
 *   cfg.json + *.safetensors         → SAELens
 *   params.npz                       → Gemma Scope
 *   params.safetensors (+config.json) → Gemma Scope 2
 */
import { LoupeError } from '../errors';
import type { SaeConfig, SaeWeights } from './config';
import { readSaeLens } from './formats/saelens';
import { readGemmaScope2, readGemmaScopeNpz } from './formats/gemma-scope';

export interface SaeFile {
	name: string; // file name, or a path inside a release (its layer may be in it)
	buffer: ArrayBuffer;
}

const base = (n: string) => n.split('/').pop()!;

export function readSaeFiles(files: SaeFile[], opts: { hookName?: string; modelName?: string } = {}): { cfg: SaeConfig; weights: SaeWeights } {
	const find = (pred: (n: string) => boolean) => files.find((f) => pred(base(f.name)));
	const text = (f: SaeFile | undefined) => (f ? new TextDecoder().decode(f.buffer) : null);
	const cfg = find((n) => n === 'cfg.json');
	const npz = find((n) => n.endsWith('.npz'));
	const params = find((n) => n === 'params.safetensors');
	const weights = find((n) => n.endsWith('.safetensors') && n !== 'sparsity.safetensors');
	let out: { cfg: SaeConfig; weights: SaeWeights };
	if (cfg && weights) out = readSaeLens(text(cfg)!, weights.buffer, { cfg: cfg.name, weights: weights.name });
	else if (npz) out = readGemmaScopeNpz(npz.buffer, { path: npz.name, ...opts });
	else if (params) out = readGemmaScope2(text(find((n) => n === 'config.json')), params.buffer, { path: params.name, ...opts });
	else
		throw new LoupeError(
			'not-an-sae',
			`These files are not an SAE Loupe can read (${files.map((f) => base(f.name)).join(', ') || 'no files'}).`,
			'Choose an SAELens folder (cfg.json + sae_weights.safetensors), a Gemma Scope params.npz, or a Gemma Scope 2 params.safetensors with its config.json.'
		);
	if (opts.hookName) out.cfg.hookName = opts.hookName;
	return out;
}

/**
 * Hook pickers: the model's hooks grouped by layer (five kinds a layer: resid_pre, attn_out, mlp_in,
 * mlp_out, resid_post), each labelled by its kind, so resid_pre is findable among them; and the
 * default hook a picker starts at, which stays on the residual stream.
 */
import { parseHook } from '../engine/model/hooks';

export interface HookGroup {
	label: string;
	/** `what`: the kind in words, for a tooltip. */
	hooks: { name: string; what: string }[];
}

const WHAT: Record<string, string> = {
	resid_pre: 'the residual stream into the layer',
	attn_out: 'what attention adds to the residual',
	mlp_in: "the MLP's normalised input",
	mlp_out: 'what the MLP adds to the residual',
	resid_post: 'the residual stream out of the layer'
};

/** Hooks in the order given, one group per layer; names that are not blocks.L hooks go in a group of their own. */
export function groupHooks(hooks: string[]): HookGroup[] {
	const groups = new Map<string, HookGroup>();
	for (const name of hooks) {
		const p = parseHook(name);
		const key = p ? `layer ${p.layer}` : 'other';
		if (!groups.has(key)) groups.set(key, { label: key, hooks: [] });
		groups.get(key)!.hooks.push({ name, what: p ? WHAT[p.kind] : name });
	}
	return [...groups.values()];
}

/** The residual hook in the middle of the model (a picker's default: SAEs and steering work best there). */
export function defaultResidHook(hooks: string[]): string {
	const resid = hooks.filter((h) => h.endsWith('.hook_resid_pre'));
	return resid[Math.floor(resid.length / 2)] ?? hooks.find((h) => h.includes('hook_resid')) ?? hooks[0] ?? '';
}

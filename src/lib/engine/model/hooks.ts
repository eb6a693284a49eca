/**
 * Hook points, named as TransformerLens and SAELens name them.
 *
 * The residual stream between layers is cut at "boundaries": boundary b is the input of layer b,
 * so `blocks.{b}.hook_resid_pre` and `blocks.{b-1}.hook_resid_post` name the same tensor.
 * Boundary nLayers is the output of the last layer (before the final norm).
 */
export type HookName = string;

const HOOK_RE = /^blocks\.(\d+)\.hook_resid_(pre|post)$/;

/** The boundary a hook name refers to, or throws with the names that exist. */
export function hookBoundary(hook: HookName, nLayers: number): number {
	const m = HOOK_RE.exec(hook);
	const layer = m ? Number(m[1]) : -1;
	if (!m || layer >= nLayers)
		throw new Error(
			`There is no hook point "${hook}" in this ${nLayers}-layer model: ` +
				`use blocks.L.hook_resid_pre or blocks.L.hook_resid_post with L from 0 to ${nLayers - 1}.`
		);
	return m[2] === 'pre' ? layer : layer + 1;
}

/** The canonical name of a boundary: resid_pre where a layer follows, else the last resid_post. */
export function boundaryName(b: number, nLayers: number): HookName {
	return b < nLayers ? `blocks.${b}.hook_resid_pre` : `blocks.${nLayers - 1}.hook_resid_post`;
}

/** Every name a boundary goes by (both, where a layer is on each side). */
export function boundaryAliases(b: number, nLayers: number): HookName[] {
	const names: HookName[] = [];
	if (b < nLayers) names.push(`blocks.${b}.hook_resid_pre`);
	if (b > 0) names.push(`blocks.${b - 1}.hook_resid_post`);
	return names;
}

/** Every hook point of an nLayers model, in order. */
export function allHookNames(nLayers: number): HookName[] {
	const out: HookName[] = [];
	for (let l = 0; l < nLayers; l++) out.push(`blocks.${l}.hook_resid_pre`, `blocks.${l}.hook_resid_post`);
	return out;
}

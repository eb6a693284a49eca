/**
 * Hook points, named as TransformerLens and SAELens name them.
 *
 * The residual stream between layers is cut at "boundaries": boundary b is the input of layer b,
 * so `blocks.{b}.hook_resid_pre` and `blocks.{b-1}.hook_resid_post` name the same tensor.
 * Boundary nLayers is the output of the last layer (before the final norm).
 *
 * Inside layer L there are three more hooks: `blocks.L.hook_attn_out` (what attention adds to the
 * residual), `blocks.L.hook_mlp_in` (the normalised MLP input) and `blocks.L.hook_mlp_out` (what the
 * MLP adds). Every hook is d_model wide. The boundary functions below serve the residual hooks only
 * (they return numbers); the hook-name functions serve all of them.
 */
export type HookName = string;

export type ResidKind = 'resid_pre' | 'resid_post';
export type SublayerKind = 'attn_out' | 'mlp_in' | 'mlp_out';
export type HookKind = ResidKind | SublayerKind;

/** Hooks inside a layer, in the order a sequential block computes them. */
export const SUBLAYER_KINDS: readonly SublayerKind[] = ['attn_out', 'mlp_in', 'mlp_out'];

const HOOK_RE = /^blocks\.(\d+)\.hook_resid_(pre|post)$/;
const ANY_HOOK_RE = /^blocks\.(\d+)\.hook_(resid_pre|resid_post|attn_out|mlp_in|mlp_out)$/;

/** The boundary a residual hook name refers to, or throws with the names that exist. */
export function hookBoundary(hook: HookName, nLayers: number): number {
	const m = HOOK_RE.exec(hook);
	const layer = m ? Number(m[1]) : -1;
	if (!m || layer >= nLayers) {
		const inside = parseHook(hook);
		throw new Error(
			inside && inside.layer < nLayers
				? `"${hook}" is a hook inside layer ${inside.layer}, not a residual-stream boundary: cut there by hook name (cutAtHooks).`
				: `There is no hook point "${hook}" in this ${nLayers}-layer model: ` +
						`use blocks.L.hook_resid_pre or blocks.L.hook_resid_post with L from 0 to ${nLayers - 1}.`
		);
	}
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

/** Every residual-stream hook point of an nLayers model, in order. */
export function allHookNames(nLayers: number): HookName[] {
	const out: HookName[] = [];
	for (let l = 0; l < nLayers; l++) out.push(`blocks.${l}.hook_resid_pre`, `blocks.${l}.hook_resid_post`);
	return out;
}

/** Every hook point of an nLayers model (residual and inside the layers), in TransformerLens order. */
export function everyHookName(nLayers: number): HookName[] {
	const out: HookName[] = [];
	for (let l = 0; l < nLayers; l++)
		out.push(`blocks.${l}.hook_resid_pre`, ...SUBLAYER_KINDS.map((k) => `blocks.${l}.hook_${k}`), `blocks.${l}.hook_resid_post`);
	return out;
}

export const hookName = (layer: number, kind: HookKind): HookName => `blocks.${layer}.hook_${kind}`;

/** The layer and kind of any hook name, or null when it is not one. */
export function parseHook(hook: HookName): { layer: number; kind: HookKind } | null {
	const m = ANY_HOOK_RE.exec(hook);
	return m ? { layer: Number(m[1]), kind: m[2] as HookKind } : null;
}

export function isResidHook(hook: HookName): boolean {
	return HOOK_RE.test(hook);
}

/**
 * One name per tensor: a residual hook becomes its boundary's canonical name (resid_post L is
 * resid_pre L+1), a hook inside a layer stays as it is. Throws with the names that exist.
 */
export function canonicalHook(hook: HookName, nLayers: number): HookName {
	const p = parseHook(hook);
	if (!p || p.layer >= nLayers)
		throw new Error(
			`There is no hook point "${hook}" in this ${nLayers}-layer model: use blocks.L.hook_{resid_pre, attn_out, mlp_in, mlp_out, resid_post} with L from 0 to ${nLayers - 1}.`
		);
	return isResidHook(hook) ? boundaryName(hookBoundary(hook, nLayers), nLayers) : hook;
}

/**
 * Where a hook sits in a sequential block, as a number that sorts hooks by name: resid_pre L is 4L,
 * attn_out 4L+1, mlp_in 4L+2, mlp_out 4L+3, resid_post L is 4(L+1). (In a parallel block attn_out
 * and mlp_in are not ordered; graph surgery orders cuts by the graph, not by this.)
 */
export function hookSite(hook: HookName, nLayers: number): number {
	const p = parseHook(canonicalHook(hook, nLayers))!;
	const offset = { resid_pre: 0, attn_out: 1, mlp_in: 2, mlp_out: 3, resid_post: 4 }[p.kind];
	return 4 * p.layer + offset;
}

/** The layers a segment between two hooks touches: [first, end). */
export function layersBetween(from: HookName | undefined, to: HookName | undefined, nLayers: number): [number, number] {
	const first = from === undefined ? 0 : Math.floor(hookSite(from, nLayers) / 4);
	const end = to === undefined ? nLayers : Math.ceil(hookSite(to, nLayers) / 4);
	return [first, end];
}

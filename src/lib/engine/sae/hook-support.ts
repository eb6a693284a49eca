/**
 * Which of the hook names SAE files use Loupe can attach an SAE to, and a clear refusal for the rest.
 * Names are TransformerLens's, as SAELens writes them: the residual stream (blocks.L.hook_resid_pre,
 * hook_resid_post) and the sublayer outputs Loupe cuts the graph at (hook_attn_out, hook_mlp_in,
 * hook_mlp_out; model/hooks.ts). Attention internals (attn.hook_z: the heads' outputs before o_proj,
 * which SAELens gives Gemma Scope's attention SAEs), the embedding and the layer-norm outputs are not
 * hook points in Loupe's graph surgery yet.
 */
import { LoupeError } from '../errors';

const SUPPORTED = /^blocks\.(\d+)\.hook_(resid_pre|resid_post|attn_out|mlp_in|mlp_out)$/;

const WHAT: [RegExp, string][] = [
	[/^blocks\.\d+\.attn\.hook_z$/, "the attention heads' outputs before o_proj (attn.hook_z, d_head × n_heads wide)"],
	[/^blocks\.\d+\.attn\.hook_(q|k|v|pattern|result)$/, 'a tensor inside attention'],
	[/^hook_embed$/, 'the token embeddings (hook_embed)'],
	[/^blocks\.\d+\.ln\d\.hook_normalized$/, 'a layer norm output'],
	[/^blocks\.\d+\.hook_resid_mid$/, 'the residual stream between attention and MLP (hook_resid_mid)'],
	[/^blocks\.\d+\.mlp\.hook_(pre|post)$/, "the MLP's hidden neurons"]
];

export const isSupportedSaeHook = (hook: string) => SUPPORTED.test(hook);

/** Throws, naming what the SAE reads and what Loupe can hook, unless Loupe can attach an SAE at `hook`. */
export function assertSupportedSaeHook(hook: string, name = 'This SAE') {
	if (SUPPORTED.test(hook)) return;
	const what = WHAT.find(([re]) => re.test(hook))?.[1];
	throw new LoupeError(
		'sae-mismatch',
		`${name} reads "${hook}"${what ? `, ${what}` : ''}; Loupe cannot hook there yet.`,
		'Loupe attaches SAEs at blocks.L.hook_resid_pre, hook_resid_post, hook_attn_out, hook_mlp_in and hook_mlp_out: pick an SAE trained on one of those.'
	);
}

// Hook pickers: five kinds a layer grouped by layer, and a default that stays on the residual stream.
import { describe, expect, it } from 'vitest';
import { defaultResidHook, groupHooks } from '../../src/lib/ui/hook-groups';

const every = (n: number) =>
	Array.from({ length: n }, (_, l) =>
		['resid_pre', 'attn_out', 'mlp_in', 'mlp_out', 'resid_post'].map((k) => `blocks.${l}.hook_${k}`)
	).flat();

describe('hook pickers', () => {
	it('group every hook by layer, in the order given, each kind explained', () => {
		const groups = groupHooks(every(3));
		expect(groups.map((g) => g.label)).toEqual(['layer 0', 'layer 1', 'layer 2']);
		expect(groups[1].hooks.map((h) => h.name)).toEqual(every(3).slice(5, 10));
		expect(groups[1].hooks[3].what).toBe('what the MLP adds to the residual');
	});
	it('default to the middle resid_pre (stories260K: blocks.2, as before the new kinds), not whatever kind sits mid-list', () => {
		expect(defaultResidHook(every(5))).toBe('blocks.2.hook_resid_pre');
		expect(defaultResidHook(every(12))).toBe('blocks.6.hook_resid_pre');
		// An export whose surgery found no sublayer hooks in some layers still defaults to a residual hook.
		expect(defaultResidHook(['blocks.0.hook_resid_pre', 'blocks.0.hook_mlp_in', 'blocks.0.hook_resid_post'])).toBe(
			'blocks.0.hook_resid_pre'
		);
	});
});

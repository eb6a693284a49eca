import { describe, expect, it } from 'vitest';
import { readViewState, writeViewState } from '../../src/lib/ui/url-state';

describe('the view in the URL', () => {
	it('reads the plain parameter names and writes back only what differs from the defaults', () => {
		const q =
			'hub=http%3A%2F%2Fmirror.local%2Fhf&prompt=Once+upon&temperature=0&top_p=0.5&top_k=20&max_tokens=64&seed=9&freq_penalty=0.3&sae=jbloom%2FGPT2-Small-SAEs-Reformatted%2Fblocks.8.hook_resid_pre&feature=123';
		const v = readViewState(new URLSearchParams(q));
		expect(v).toMatchObject({
			hub: 'http://mirror.local/hf',
			model: 'stories260K',
			prompt: 'Once upon',
			sae: 'jbloom/GPT2-Small-SAEs-Reformatted/blocks.8.hook_resid_pre',
			feature: 123
		});
		expect(v.sampling).toEqual({ temperature: 0, topP: 0.5, topK: 20, maxTokens: 64, seed: 9, freqPenalty: 0.3 });
		expect(writeViewState(v).toString()).toBe(q);
		expect(writeViewState(readViewState(new URLSearchParams())).toString()).toBe('');
	});

	it('ignores values that are not numbers and clamps the rest', () => {
		const v = readViewState(new URLSearchParams('temperature=hot&top_p=7&max_tokens=-3'));
		expect(v.sampling.temperature).toBe(0.8);
		expect(v.sampling.topP).toBe(1);
		expect(v.sampling.maxTokens).toBe(1);
	});
});

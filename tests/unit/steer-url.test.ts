import { describe, expect, it } from 'vitest';
import { formatSteer, parseSteer } from '../../src/lib/engine/steer/url';

describe('steering in the URL', () => {
	it('round-trips features, modes, values, normalisation and special tokens', () => {
		const s = '394:add:8:n,12:clamp:0,7:add:-2.5,bos';
		expect(parseSteer(s)).toEqual({
			steerSpecial: true,
			features: [
				{ feature: 394, mode: 'add', value: 8, normalize: true },
				{ feature: 12, mode: 'clamp', value: 0, normalize: false },
				{ feature: 7, mode: 'add', value: -2.5, normalize: false }
			]
		});
		expect(formatSteer(parseSteer(s))).toBe(s);
	});
	it('skips malformed items', () => {
		expect(parseSteer('x:add:1,3:push:2,4:add:nope,5:clamp:1').features).toEqual([
			{ feature: 5, mode: 'clamp', value: 1, normalize: false }
		]);
	});
	it('carries saved steering vectors by id (add only)', () => {
		const s = '394:add:8:n,vk3x9q2:add:4:n,vab12:add:-2';
		expect(parseSteer(s).features.slice(1)).toEqual([
			{ feature: -1, vector: 'k3x9q2', mode: 'add', value: 4, normalize: true },
			{ feature: -1, vector: 'ab12', mode: 'add', value: -2, normalize: false }
		]);
		expect(formatSteer(parseSteer(s))).toBe(s);
		expect(parseSteer('vab:clamp:1').features).toEqual([]);
	});
});

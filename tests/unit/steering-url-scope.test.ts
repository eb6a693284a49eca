// Methods and scopes in the steer= URL and in preset files, and a scope resolved to the rows of
// each forward. Old links and version-1 preset files (literal text as Loupe wrote them before
// methods and scopes) read as they did.
import { describe, expect, it } from 'vitest';
import { formatSteer, parseSteer } from '../../src/lib/engine/steer/url';
import { parsePositions, scopeRows } from '../../src/lib/engine/steer/scope';
import { parsePresetFile, presetFileText } from '../../src/lib/engine/steer/preset-file';

describe('steer= with methods and scopes', () => {
	it('reads links written before methods and scopes as before', () => {
		expect(parseSteer('394:add:8:n,12:clamp:0,vk3x9q2:add:4,bos')).toEqual({
			steerSpecial: true,
			features: [
				{ feature: 394, mode: 'add', value: 8, normalize: true },
				{ feature: 12, mode: 'clamp', value: 0, normalize: false },
				{ feature: -1, vector: 'k3x9q2', mode: 'add', value: 4, normalize: false }
			]
		});
		// No scope field at all on an old item (a scope of undefined would still print nothing, but the setup is the old one).
		expect(Object.keys(parseSteer('394:add:8:n').features[0]).sort()).toEqual(['feature', 'mode', 'normalize', 'value']);
	});

	it('round-trips every method and scope', () => {
		const s = '7:orth:0:gen,9:cap:2.5:at3-5.9,1:add:2:n:from4,2:clamp:1:prompt,vab12:orth:1.5:at0.2,vab12:cap:-1:from0,bos';
		const setup = parseSteer(s);
		expect(setup.features.map((f) => [f.mode, f.scope])).toEqual([
			['orthogonal', { kind: 'generated' }],
			['cap', { kind: 'positions', positions: [3, 4, 5, 9] }],
			['add', { kind: 'from', n: 4 }],
			['clamp', { kind: 'prompt' }],
			['orthogonal', { kind: 'positions', positions: [0, 2] }],
			['cap', { kind: 'from', n: 0 }]
		]);
		expect(formatSteer(setup)).toBe(s);
	});

	it('skips items whose method or scope is not one (a vector cannot clamp)', () => {
		expect(parseSteer('1:add:1:later,2:add:1:at,3:add:1:at5-2,4:add:1:n:gen:n,vab:clamp:1,5:proj:1,6:add:1:gen').features).toEqual([
			{ feature: 6, mode: 'add', value: 1, normalize: false, scope: { kind: 'generated' } }
		]);
	});

	it('positions as people write them', () => {
		expect(parsePositions('3, 7 10-12')).toEqual([3, 7, 10, 11, 12]);
		expect(parsePositions('')).toBeNull();
		expect(parsePositions('2, x')).toBeNull();
		expect(parsePositions('0-100000')).toBeNull();
	});
});

describe('a scope as the rows of one forward (prompt of 5 tokens, then one token a step)', () => {
	// The prefill holds positions 0–4; decode step k holds position 5 + k alone.
	const steps = [{ first: 0, rows: 5 }, ...[5, 6, 7].map((first) => ({ first, rows: 1 }))];
	const steered = (scope: Parameters<typeof scopeRows>[0], skipBos: boolean) =>
		steps.flatMap(({ first, rows }) => {
			const w = scopeRows(scope, first, rows, 5, skipBos);
			return Array.from({ length: rows }, (_, t) => t)
				.filter((t) => w && ((t >= w.lo && t < w.hi) || w.list.includes(t)))
				.map((t) => first + t);
		});
	it.each([
		['every position, BOS skipped', undefined, true, [1, 2, 3, 4, 5, 6, 7]],
		['every position with BOS', undefined, false, [0, 1, 2, 3, 4, 5, 6, 7]],
		['the prompt', { kind: 'prompt' as const }, true, [1, 2, 3, 4]],
		['generated tokens', { kind: 'generated' as const }, true, [5, 6, 7]],
		['from token 3 on', { kind: 'from' as const, n: 3 }, true, [3, 4, 5, 6, 7]],
		['from token 6 on', { kind: 'from' as const, n: 6 }, false, [6, 7]],
		['listed positions (BOS listed)', { kind: 'positions' as const, positions: [7, 0, 2, 2, 9] }, true, [0, 2, 7]]
	])('%s', (_, scope, skipBos, want) => {
		expect(steered(scope, skipBos)).toEqual(want);
	});
});

describe('preset files with methods and scopes', () => {
	it('reads a version-1 file as Loupe wrote it, and writes and reads one with scopes', () => {
		const v1 =
			'{\n "loupe": "steering-preset",\n "version": 1,\n "model": "stories260K",\n "name": "old",\n "steer": "12:add:4,bos",\n "sae": null,\n "createdAt": "2026-01-01T00:00:00.000Z",\n "vectors": []\n}';
		const old = parsePresetFile(v1, 'stories260K').preset;
		expect(parseSteer(old.steer)).toEqual({ steerSpecial: true, features: [{ feature: 12, mode: 'add', value: 4, normalize: false }] });
		const steer = '12:orth:0:gen,3:cap:1.5:at2-4';
		const text = presetFileText({ model: 'stories260K', name: 'new', steer, sae: null, createdAt: '' }, []);
		expect(JSON.parse(text).version).toBe(2);
		expect(parseSteer(parsePresetFile(text, 'stories260K').preset.steer)).toEqual(parseSteer(steer));
		expect(() => parsePresetFile(text.replace('"version": 2', '"version": 3'), 'stories260K')).toThrow(
			/version 3, written by a newer Loupe/
		);
	});
});

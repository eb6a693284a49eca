// Steering preset files: a preset with its vectors survives the file; other JSON, damaged vectors and
// another model's presets are refused with a message that says what to do.
import { describe, expect, it } from 'vitest';
import { parsePresetFile, presetFileText, presetVectorIds } from '../../src/lib/engine/steer/preset-file';
import type { SteeringVector } from '../../src/lib/engine/steer/vectors';

const vector: SteeringVector = {
	id: 'k3x9q2',
	name: 'happy − sad',
	model: 'stories260K',
	hook: 'blocks.3.hook_resid_pre',
	values: Float32Array.from([0.5, -1.25, 3]),
	positive: ['happy'],
	negative: ['sad'],
	createdAt: '2026-11-23T00:00:00.000Z'
} as SteeringVector;
const preset = {
	model: 'stories260K',
	name: 'cheerful',
	steer: '12:add:4,vk3x9q2:add:2:n',
	sae: 'hub:x',
	createdAt: '2026-11-23T00:00:00.000Z'
};

describe('steering preset files', () => {
	it('carry the setup and its vectors', () => {
		expect(presetVectorIds(preset)).toEqual(['k3x9q2']);
		const back = parsePresetFile(presetFileText(preset, [vector]), 'stories260K');
		expect(back.preset).toMatchObject({ model: 'stories260K', name: 'cheerful', steer: preset.steer, sae: 'hub:x' });
		expect(back.vectors).toHaveLength(1);
		expect(back.vectors[0]).toMatchObject({ id: 'k3x9q2', hook: 'blocks.3.hook_resid_pre', model: 'stories260K' });
		expect([...back.vectors[0].values]).toEqual([0.5, -1.25, 3]);
	});

	it('refuse what is not a preset for this model', () => {
		expect(() => parsePresetFile('not json', 'stories260K')).toThrow(/not JSON/);
		expect(() => parsePresetFile('{"name":"x"}', 'stories260K')).toThrow(/not a Loupe steering preset/);
		expect(() => parsePresetFile(presetFileText(preset, [vector]), 'gpt2-small')).toThrow(/made for stories260K, not gpt2-small/);
		const damaged = JSON.parse(presetFileText(preset, [vector]));
		damaged.vectors[0].values = 'garbage';
		expect(() => parsePresetFile(JSON.stringify(damaged), 'stories260K')).toThrow(/damaged/);
	});
});

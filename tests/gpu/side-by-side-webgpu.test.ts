// Side by side through the engine's session and steering on the WebGPU EP in Chromium (stories260K,
// the fused graph the app builds on WebGPU, a contrast-style vector applied by the WGSL steer kernel):
// the batch of two sequences writes the same ids, both rows, as the two runs one after the other; and
// a new strength for the same vector acts at once (it used to keep the first strength's text until
// reload): strength 0 after strength 6 writes the default completion again.
import { describe, expect, it, inject } from 'vitest';
import { ModelSession } from '../../src/lib/engine/model/session';
import { Steering } from '../../src/lib/engine/steer/steering';
import { requestBackend } from '../../src/lib/engine/model/backend';
import { saveVector } from '../../src/lib/engine/store/db';
import { defaultSampling } from '../../src/lib/engine/sample/sampler';

const file = async (name: string) => new File([await (await fetch(`/@fs${inject('stories260KDir')}/${name}`)).arrayBuffer()], name);

describe('side by side on WebGPU', () => {
	it('one batch of two equals the two runs one after the other; a changed vector strength acts at once', { timeout: 300_000 }, async () => {
		requestBackend({ preference: 'webgpu' }); // the point is WebGPU, even on a software adapter
		const session = new ModelSession();
		const info = await session.loadFromFiles([await file('stories260K.bin'), await file('tok512.bin')]);
		expect(info.backend).toBe('webgpu');
		const m = session.requireModel();
		const d = m.source.shape.dModel;
		await saveVector({
			id: 'gpusbs',
			name: 'test',
			model: m.info.id,
			hook: 'blocks.2.hook_resid_pre',
			values: Float32Array.from({ length: d }, (_, i) => 0.5 * Math.sin(0.7 * i + 0.2)),
			positive: ['a'],
			negative: ['b'],
			createdAt: '2026-01-01T00:00:00Z'
		});
		const steering = new Steering(session);
		const at = (value: number) =>
			steering.set({ steerSpecial: false, features: [{ feature: -1, vector: 'gpusbs', mode: 'add', value, normalize: false }] });
		const s = { ...defaultSampling, temperature: 0.9, topP: 0.95, maxTokens: 12, seed: 4 };

		await at(6);
		const batched = await steering.sideBySide('Once', s, () => {});
		const sequential = await steering.sideBySide('Once', s, () => {}, { batched: false });
		expect(batched.batched).toBe(true);
		expect(batched.default.tokens).toEqual(sequential.default.tokens);
		expect(batched.steered.tokens).toEqual(sequential.steered.tokens);
		expect(batched.steered.tokens).not.toEqual(batched.default.tokens);

		await at(0); // the same vector, a new strength: the kernel's directions stay, its strength must not
		const zero = await steering.sideBySide('Once', s, () => {});
		expect(zero.steered.tokens).toEqual(zero.default.tokens);
		expect(zero.default.tokens).toEqual(batched.default.tokens);
		await session.requireModel().runner.dispose();
	});
});

// Side by side through the engine's own session and steering path in Node (wasm) on stories260K:
// the default and the steered completion written as one batch of two sequences (steering on row 1
// only) give the same ids, both rows, as the two runs one after the other; the greedy default row is
// llama2.c's published output. A setup naming a feature beyond the SAE's width, or SAE features with
// no SAE loaded, is refused in words naming the width instead of being dropped in silence.
import './engine-in-node';
import { describe, expect, it, vi } from 'vitest';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { ModelSession } from '../../src/lib/engine/model/session';
import { Steering } from '../../src/lib/engine/steer/steering';
import { SaeExplorer } from '../../src/lib/engine/sae/explorer';
import type { SteeringVector } from '../../src/lib/engine/steer/vectors';
import { defaultSampling } from '../../src/lib/engine/sample/sampler';
import { publishedGreedy256, stories260KDir } from '../fixtures';

// Node has no IndexedDB: saved vectors in a map, no corpus runs or labels.
const saved = new Map<string, SteeringVector>();
vi.mock('../../src/lib/engine/store/db', async (original) => ({
	...(await original<object>()),
	saveVector: async (v: SteeringVector) => void saved.set(v.id, v),
	getVector: async (id: string) => saved.get(id),
	latestCorpusRun: async () => undefined,
	getLabel: async () => undefined
}));

const fileAt = (name: string) => new File([readFileSync(resolve(stories260KDir, name))], name);

async function open() {
	const session = new ModelSession();
	await session.loadFromFiles([fileAt('stories260K.bin'), fileAt('tok512.bin')]);
	return session;
}

const vector = (model: string, d: number): SteeringVector => ({
	id: 'sbs001',
	name: 'test',
	model,
	hook: 'blocks.2.hook_resid_pre',
	values: Float32Array.from({ length: d }, (_, i) => 0.5 * Math.sin(0.7 * i + 0.2)),
	positive: ['a'],
	negative: ['b'],
	createdAt: '2026-01-01T00:00:00Z'
});

describe('side by side as one batch of two sequences', () => {
	it('writes the same ids in both rows as the two runs one after the other (greedy and sampled)', { timeout: 300_000 }, async () => {
		const session = await open();
		const m = session.requireModel();
		saved.set('sbs001', vector(m.info.id, m.source.shape.dModel));
		const steering = new Steering(session);
		await steering.set({ steerSpecial: false, features: [{ feature: -1, vector: 'sbs001', mode: 'add', value: 3, normalize: false }] });
		for (const s of [
			{ ...defaultSampling, temperature: 0, maxTokens: 32, seed: 1 },
			{ ...defaultSampling, temperature: 0.9, topP: 0.95, maxTokens: 32, seed: 11 }
		]) {
			const heard = { default: 0, steered: 0 };
			const batched = await steering.sideBySide('', s, (stream) => heard[stream]++);
			const sequential = await steering.sideBySide('', s, () => {}, { batched: false });
			expect(batched.batched).toBe(true);
			expect(sequential.batched).toBe(false);
			expect(batched.default.tokens).toEqual(sequential.default.tokens);
			expect(batched.steered.tokens).toEqual(sequential.steered.tokens);
			expect(batched.steered.text).toBe(sequential.steered.text);
			expect(heard).toEqual({ default: batched.default.tokens.length, steered: batched.steered.tokens.length });
			// The steering reached row 1 and only row 1.
			expect(batched.steered.tokens).not.toEqual(batched.default.tokens);
			if (s.temperature === 0) expect(publishedGreedy256().startsWith(batched.default.text)).toBe(true);
		}
	});
});

describe('a steering setup the loaded SAE cannot honour', () => {
	const D_IN = 64;
	const D_SAE = 16;
	function safetensors(tensors: Record<string, { shape: number[]; data: number[] }>): Uint8Array<ArrayBuffer> {
		const header: Record<string, unknown> = {};
		let off = 0;
		for (const [k, t] of Object.entries(tensors)) {
			header[k] = { dtype: 'F32', shape: t.shape, data_offsets: [off, off + 4 * t.data.length] };
			off += 4 * t.data.length;
		}
		const json = Buffer.from(JSON.stringify(header));
		const len = Buffer.alloc(8);
		len.writeBigUInt64LE(BigInt(json.length));
		return new Uint8Array(Buffer.concat([len, json, ...Object.values(tensors).map((t) => Buffer.from(Float32Array.from(t.data).buffer))]));
	}

	it('is refused, naming the width, when a feature is beyond it; and SAE features without an SAE say so', async () => {
		const session = await open();
		const steering = new Steering(session);
		const setup = { steerSpecial: false, features: [{ feature: 20, mode: 'add' as const, value: 8, normalize: true }] };
		await steering.set(setup);
		const s = { ...defaultSampling, maxTokens: 4 };
		await expect(steering.sideBySide('Once', s, () => {})).rejects.toThrow('Nothing to steer with yet.');
		saved.set('sbs001', vector(session.requireModel().info.id, 64));
		await steering.set({
			...setup,
			features: [...setup.features, { feature: -1, vector: 'sbs001', mode: 'add', value: 1, normalize: false }]
		});
		await expect(steering.sideBySide('Once', s, () => {})).rejects.toThrow(/names SAE feature #20, but no SAE is loaded/);

		const cfg = {
			d_in: D_IN,
			d_sae: D_SAE,
			hook_name: 'blocks.1.hook_resid_pre',
			model_name: 'stories260K',
			dtype: 'float32',
			architecture: 'standard'
		};
		await new SaeExplorer(session).loadFromFiles([
			new File([JSON.stringify({ ...cfg, apply_b_dec_to_input: false, normalize_activations: 'none' })], 'cfg.json'),
			new File(
				[
					safetensors({
						W_enc: { shape: [D_IN, D_SAE], data: Array(D_IN * D_SAE).fill(0.01) },
						W_dec: { shape: [D_SAE, D_IN], data: Array(D_SAE * D_IN).fill(0.01) },
						b_enc: { shape: [D_SAE], data: Array(D_SAE).fill(0) },
						b_dec: { shape: [D_IN], data: Array(D_IN).fill(0) }
					})
				],
				'sae_weights.safetensors'
			)
		]);
		await steering.set(setup);
		const beyond = /names feature #20, beyond this SAE's width: it has 16 features \(#0–#15\)/;
		await expect(steering.sideBySide('Once', s, () => {})).rejects.toThrow(beyond);
		await expect(steering.nextTokenTable('Once')).rejects.toThrow(beyond);
		await steering.set({ ...setup, features: [{ ...setup.features[0], feature: 15 }] });
		const ok = await steering.sideBySide('Once', s, () => {});
		expect(ok.steered.tokens.length).toBeGreaterThan(0);
	});
});

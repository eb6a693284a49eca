// sae_preprocess + matmul_chunk (encode) + top_k on WebGPU against the TypeScript SAE reference, on shapes
// that are not multiples of the tiles, every architecture, and a W_enc split across bindings.
import { beforeAll, describe, expect, it } from 'vitest';
import { Sae, topK } from '../../src/lib/engine/sae/sae';
import type { SaeConfig } from '../../src/lib/engine/sae/config';
import { SaeEncoder } from '../../src/lib/engine/gpu/sae-encoder';
import { createStorage } from '../../src/lib/engine/gpu/buffers';
import { plainSaeConfig, rng, testDevice } from './device';
import { maxAbsDiff } from '../numeric';

let device: GPUDevice;
beforeAll(async () => {
	device = await testDevice();
});

function randomSae(cfg: Partial<SaeConfig> & Pick<SaeConfig, 'dIn' | 'dSae' | 'architecture'>, seed: number): Sae {
	const r = rng(seed);
	const fill = (n: number, scale: number, shift = 0) => Float32Array.from({ length: n }, () => r() * scale + shift);
	const full = plainSaeConfig(cfg.dIn, cfg.dSae, cfg);
	return Sae.create(full, {
		wEnc: fill(cfg.dIn * cfg.dSae, 1 / Math.sqrt(cfg.dIn)),
		wDec: fill(cfg.dSae * cfg.dIn, 0.1),
		bEnc: fill(cfg.dSae, 0.2, -0.05),
		bDec: fill(cfg.dIn, 0.3),
		threshold: fill(cfg.dSae, 0.1, 0.15)
	});
}

const cases: [string, Partial<SaeConfig> & Pick<SaeConfig, 'dIn' | 'dSae' | 'architecture'>, number, number?][] = [
	// name, config, tokens, maxBindingBytes
	['ReLU, 1 token, 64×256', { dIn: 64, dSae: 256, architecture: 'relu' }, 1],
	[
		'ReLU with b_dec on the input and centring, 5 tokens, 70×300',
		{ dIn: 70, dSae: 300, architecture: 'relu', applyBDecToInput: true, centerInput: true },
		5
	],
	['JumpReLU, 9 tokens, 96×1000, W_enc split into 4 bindings', { dIn: 96, dSae: 1000, architecture: 'jumprelu' }, 9, 96 * 4 * 256],
	[
		'TopK k=7 with layer_norm, 13 tokens, 33×777',
		{ dIn: 33, dSae: 777, architecture: 'topk', k: 7, normalizeActivations: 'layer_norm' },
		13
	],
	[
		'ReLU, constant_norm_rescale, 3 tokens, 768×4096 split in 3',
		{ dIn: 768, dSae: 4096, architecture: 'relu', normalizeActivations: 'constant_norm_rescale' },
		3,
		768 * 4 * 1536
	]
];

describe('SAE encoding on the GPU against the TypeScript reference', () => {
	for (const [name, cfg, tokens, maxBindingBytes] of cases) {
		it(name, async () => {
			const sae = randomSae(cfg, cfg.dSae + tokens);
			const r = rng(tokens * 7 + 1);
			const x = Float32Array.from({ length: tokens * cfg.dIn }, () => r() * 2 + 0.3);
			const xBuf = createStorage(device, x.byteLength + 1024, 'test.residual'); // larger, as ORT's buckets are
			device.queue.writeBuffer(xBuf, 0, x);
			const enc = await SaeEncoder.create(device, sae, { maxBindingBytes });
			if (maxBindingBytes) expect(enc.chunks.length).toBeGreaterThan(1);
			const k = 16;
			const got = await enc.encodeTopK(xBuf, tokens, k);
			const acts = await enc.readActivations(tokens);
			const want = sae.encode(x, tokens);
			expect(maxAbsDiff(acts, want)).toBeLessThan(1e-4);
			for (let t = 0; t < tokens; t++) {
				const wantTop = topK(want.subarray(t * cfg.dSae, (t + 1) * cfg.dSae), k);
				const ids = [...got.ids.subarray(t * k, (t + 1) * k)];
				const vals = [...got.values.subarray(t * k, (t + 1) * k)];
				// Nonzero entries must match by id and value; ties at exactly 0 are ordered by index on both sides.
				expect(ids).toEqual(wantTop.map(([i]) => i));
				vals.forEach((v, j) => expect(Math.abs(v - wantTop[j][1])).toBeLessThan(1e-4));
			}
			if (cfg.architecture === 'topk')
				for (let t = 0; t < tokens; t++)
					expect(acts.subarray(t * cfg.dSae, (t + 1) * cfg.dSae).filter((v) => v > 0).length).toBeLessThanOrEqual(cfg.k!);
			enc.destroy();
			xBuf.destroy();
		});
	}
});

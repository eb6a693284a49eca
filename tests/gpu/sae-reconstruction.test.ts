// matmul_chunk (decode) + recon_metrics on WebGPU against the TypeScript reference (decode with undo, metrics).
import { beforeAll, describe, expect, it } from 'vitest';
import { Sae } from '../../src/lib/engine/sae/sae';
import { reconstructionReference } from '../../src/lib/engine/sae/reconstruction';
import { SaeEncoder } from '../../src/lib/engine/gpu/sae-encoder';
import { FeatureInspector } from '../../src/lib/engine/gpu/feature-inspector';
import { SaeReconstruction } from '../../src/lib/engine/gpu/sae-reconstruction';
import { createStorage } from '../../src/lib/engine/gpu/buffers';
import { plainSaeConfig, rng, testDevice } from './device';

let device: GPUDevice;
beforeAll(async () => {
	device = await testDevice();
});

describe('reconstruction error on the GPU against the TypeScript reference', () => {
	for (const [name, extra, dIn, dSae, tokens, maxBindingBytes] of [
		['plain ReLU, 70×300, 6 tokens', {}, 70, 300, 6, undefined],
		[
			'centred + layer_norm + b_dec, 64×1000, 11 tokens, W_dec in 4 chunks',
			{ centerInput: true, normalizeActivations: 'layer_norm', applyBDecToInput: true },
			64,
			1000,
			11,
			64 * 4 * 256
		]
	] as const) {
		it(name, async () => {
			const r = rng(dSae + tokens);
			const fill = (n: number, sc: number) => Float32Array.from({ length: n }, () => r() * sc);
			const cfg = plainSaeConfig(dIn, dSae, extra);
			const sae = Sae.create(cfg, {
				wEnc: fill(dIn * dSae, 0.3),
				wDec: fill(dSae * dIn, 0.2),
				bEnc: fill(dSae, 0.1),
				bDec: fill(dIn, 0.5)
			});
			const x = Float32Array.from({ length: tokens * dIn }, () => r() * 3 + 0.5);
			const xBuf = createStorage(device, x.byteLength + 512, 'test.x');
			device.queue.writeBuffer(xBuf, 0, x);
			const enc = await SaeEncoder.create(device, sae);
			const insp = await FeatureInspector.create(device, sae, null, { maxBindingBytes });
			if (maxBindingBytes) expect(insp.chunks.length).toBe(4);
			const recon = await SaeReconstruction.create(device, sae, insp.chunks);
			await enc.encodeTopK(xBuf, tokens, 4);
			const got = await recon.metrics(xBuf, enc.activationsBuffer, enc.undoBuffer, tokens);
			const want = reconstructionReference(sae, x, tokens);
			expect(got.tokens).toBe(tokens - 1);
			expect(Math.abs(got.mse - want.mse) / want.mse).toBeLessThan(1e-4);
			expect(Math.abs(got.explainedVariance! - want.explainedVariance!)).toBeLessThan(1e-4);
			expect(Math.abs(got.cosine - want.cosine)).toBeLessThan(1e-5);
			enc.destroy();
			insp.destroy();
			recon.destroy();
		});
	}
});

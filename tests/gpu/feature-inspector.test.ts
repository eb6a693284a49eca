// feature_logits + decoder_cosine + top_k on WebGPU against ../sae/features.ts, W_dec split into chunks.
import { beforeAll, describe, expect, it } from 'vitest';
import { Sae, topK } from '../../src/lib/engine/sae/sae';
import { decoderCosinesReference, logitEffectsReference } from '../../src/lib/engine/sae/features';
import { FeatureInspector } from '../../src/lib/engine/gpu/feature-inspector';
import { plainSaeConfig, rng, testDevice } from './device';

let device: GPUDevice;
beforeAll(async () => {
	device = await testDevice();
});

describe('feature pages on the GPU against the TypeScript reference', () => {
	for (const [dIn, dSae, vocab, maxBindingBytes] of [
		[64, 300, 512, undefined],
		[70, 1000, 1001, 70 * 4 * 128]
	] as const) {
		it(`d_in ${dIn}, d_sae ${dSae}, vocab ${vocab}${maxBindingBytes ? ', W_dec in chunks' : ''}`, async () => {
			const r = rng(dSae);
			const fill = (n: number) => Float32Array.from({ length: n }, r);
			const sae = Sae.create(plainSaeConfig(dIn, dSae), {
				wEnc: fill(dIn * dSae),
				wDec: fill(dSae * dIn),
				bEnc: fill(dSae),
				bDec: fill(dIn)
			});
			const unembedding = { vocabSize: vocab, dModel: dIn, classifier: fill(vocab * dIn), normWeight: fill(dIn) };
			const insp = await FeatureInspector.create(device, sae, unembedding, { maxBindingBytes });
			if (maxBindingBytes) expect(insp.chunks.length).toBeGreaterThan(1);
			for (const f of [0, 7, dSae - 1]) {
				const effects = logitEffectsReference(sae, f, unembedding);
				const got = await insp.logitEffects(f, 10);
				expect(got.positive.map((x) => x.id)).toEqual(topK(effects, 10).map(([i]) => i));
				expect(got.negative.map((x) => x.id)).toEqual(
					topK(
						effects.map((v) => -v),
						10
					).map(([i]) => i)
				);
				got.positive.forEach((x) => expect(Math.abs(x.value - effects[x.id])).toBeLessThan(1e-4));
				got.negative.forEach((x) => expect(Math.abs(x.value - effects[x.id])).toBeLessThan(1e-4));
				const cos = decoderCosinesReference(sae, f);
				cos[f] = -Infinity; // the reference leaves f out like the GPU path does
				const near = await insp.nearest(f, 5);
				expect(near.map((x) => x.id)).toEqual(topK(cos, 5).map(([i]) => i));
				near.forEach((x) => expect(Math.abs(x.value - cos[x.id])).toBeLessThan(1e-5));
			}
			insp.destroy();
		});
	}
});

// A trained SAE leaves the tab as SAELens files: the trainer worked on activations times a scale
// (E‖x‖² = d_in) and the export folds it back, so the SAE read from those files (Loupe's SAELens
// reader and its TS SAE, what the explorer runs) encodes raw activations exactly as the trainer
// encoded the scaled ones (the training reference's forward), for every architecture.
import { describe, expect, it } from 'vitest';
import { forward, initParams, type SaeParams } from '../../src/lib/engine/train/reference';
import { defaultTrainConfig, newCheckpoint, shapeOf, toSaeLens, type TrainConfig } from '../../src/lib/engine/train/training-run';
import { readSaeLens } from '../../src/lib/engine/sae/formats/saelens';
import { Sae } from '../../src/lib/engine/sae/sae';
import { seededRandom } from '../../src/lib/engine/sample/prng';

describe('SAELens export of a trained SAE', () => {
	for (const arch of ['topk', 'relu', 'jumprelu'] as const) {
		it(`${arch}: the exported SAE encodes raw activations as training encoded scaled ones`, () => {
			const random = seededRandom(3);
			const d = 16,
				n = 40,
				B = 12,
				scale = 0.37;
			const cfg: TrainConfig = { ...defaultTrainConfig('stories260K', 'blocks.2.hook_resid_pre'), arch, width: n, k: 5 };
			const shape = shapeOf(cfg, d);
			const params: SaeParams = initParams(
				shape,
				random,
				Float32Array.from({ length: d }, () => random() - 0.5)
			);
			params.bEnc = Float32Array.from({ length: n }, () => (random() - 0.5) * 0.2);
			if (params.logThreshold) params.logThreshold = Float32Array.from({ length: n }, () => Math.log(0.05 + 0.2 * random()));
			const x = Float32Array.from({ length: B * d }, () => (random() - 0.5) * 6);
			const trained = forward(
				params,
				shape,
				x.map((v) => v * scale),
				B
			);
			const checkpoint = { ...newCheckpoint('t', cfg, d, 10, params), scale };
			const { cfgJson, safetensors } = toSaeLens(checkpoint);
			const loaded = readSaeLens(
				cfgJson,
				safetensors.buffer.slice(safetensors.byteOffset, safetensors.byteOffset + safetensors.byteLength) as ArrayBuffer
			);
			expect(loaded.cfg).toMatchObject({ architecture: arch, dIn: d, dSae: n, hookName: 'blocks.2.hook_resid_pre' });
			const sae = Sae.create(loaded.cfg, loaded.weights);
			const acts = sae.encode(x, B);
			let active = 0;
			for (let i = 0; i < B * n; i++) {
				expect(acts[i] > 0, `entry ${i} active`).toBe(trained.acts[i] > 0);
				expect(Math.abs(acts[i] - trained.acts[i])).toBeLessThan(1e-4 * (1 + Math.abs(trained.acts[i])));
				if (acts[i] > 0) active++;
			}
			expect(active).toBeGreaterThan(B); // something fires, not everything
			expect(active).toBeLessThan(B * n);
			// Reconstructions agree too, in the model's units: x̂ = (x̂_scaled) / scale.
			const xHat = sae.decode(acts, B);
			for (let i = 0; i < B * d; i++) expect(Math.abs(xHat[i] - (trained.err[i] + x[i] * scale) / scale)).toBeLessThan(1e-3);
		});
	}
});

// Steering on the engine's real path: stories260K on ORT's WebGPU EP, the steer kernel editing the
// residual buffer in place at a hook, against the plain TypeScript forward with the same edit.
import { describe, expect, it, inject } from 'vitest';
import { loupeGpuDevice } from '../../src/lib/engine/model/gpu-device';
import * as ort from 'onnxruntime-web/webgpu';
import { readLlama2cCheckpoint } from '../../src/lib/engine/model/llama2c/checkpoint';
import { ReferenceLlama } from '../../src/lib/engine/model/llama2c/reference-forward';
import { buildLlamaOnnx } from '../../src/lib/engine/model/llama2c/to-onnx';
import { SegmentRunner } from '../../src/lib/engine/model/runner';
import { readBuffer } from '../../src/lib/engine/gpu/buffers';
import { SaeEncoder } from '../../src/lib/engine/gpu/sae-encoder';
import { SteerKernel } from '../../src/lib/engine/gpu/steer';
import { Sae } from '../../src/lib/engine/sae/sae';
import { steerDirections, type SteerFeature } from '../../src/lib/engine/steer/spec';
import { rng } from './device';
import { maxAbsDiff } from '../numeric';

const fetchFixture = async (name: string) => (await fetch(`/@fs${inject('stories260KDir')}/${name}`)).arrayBuffer();

/** A random SAE on d_model 64 whose feature f reads exactly its own decoder direction and is active everywhere. */
function testSae(hookName: string, f: number): Sae {
	const r = rng(11);
	const dIn = 64;
	const dSae = 96;
	const wEnc = Float32Array.from({ length: dIn * dSae }, () => r() * 0.1);
	const wDec = Float32Array.from({ length: dSae * dIn }, () => r());
	const bEnc = Float32Array.from({ length: dSae }, () => r() * 0.1);
	const row = wDec.subarray(f * dIn, (f + 1) * dIn);
	const n2 = row.reduce((a, x) => a + x * x, 0);
	for (let i = 0; i < dIn; i++) wEnc[i * dSae + f] = row[i] / n2;
	bEnc[f] = 50; // active at every position, so clamping is exact
	return Sae.create(
		{
			architecture: 'relu',
			dIn,
			dSae,
			hookName,
			applyBDecToInput: false,
			normalizeActivations: 'none',
			centerInput: false,
			format: 'test',
			dtype: 'F32',
			name: 'steer-test'
		},
		{ wEnc, wDec, bEnc, bDec: new Float32Array(dIn) }
	);
}

ort.env.logLevel = 'error';
const tokens = [1, 403, 407, 261, 300, 17, 45];

describe('steering on WebGPU', () => {
	for (const [hook, boundary] of [
		['blocks.2.hook_resid_pre', 2],
		['blocks.4.hook_resid_post', 5]
	] as const) {
		it(`adding 3 × the unit decoder row at ${hook} gives the logits of the TS forward with that vector added`, async () => {
			ort.env.wasm.numThreads = 1;
			const weights = readLlama2cCheckpoint(await fetchFixture('stories260K.bin'));
			const { vocabSize } = weights.config;
			const f = 5;
			const sae = testSae(hook, f);
			const specs: SteerFeature[] = [
				{ feature: f, mode: 'add', value: 3, normalize: true },
				{ feature: 9, mode: 'add', value: -1.5, normalize: false }
			];
			const runner = await SegmentRunner.create(ort, buildLlamaOnnx(weights, [boundary]), 'webgpu');
			const device = await loupeGpuDevice();
			const steer = await SteerKernel.create(device);
			const encoder = await SaeEncoder.create(device, sae);

			const dirs = steerDirections(sae, specs);
			const ref = new ReferenceLlama(weights);
			const want = tokens.map((t) =>
				ref.step(t, (b, x) => {
					if (b !== boundary) return;
					for (let i = 0; i < 64; i++) x[i] += 3 * dirs[i] - 1.5 * dirs[64 + i];
				})
			);
			let worst = 0;
			let pos = 0;
			for (const chunk of [tokens.slice(0, 4), ...tokens.slice(4).map((t) => [t])]) {
				const { logits, rows } = await runner.forward(chunk, (name, resid, n) => {
					if (name === hook)
						steer.apply(
							resid.gpuBuffer as GPUBuffer,
							n,
							64,
							() => dirs,
							specs,
							'fixed',
							encoder.activationsBufferOrDummy(),
							sae.cfg.dSae,
							-1
						);
				});
				const got = new Float32Array(await readBuffer(device, logits.gpuBuffer as GPUBuffer, rows * vocabSize * 4));
				for (let s = 0; s < rows; s++) worst = Math.max(worst, maxAbsDiff(got.subarray(s * vocabSize, (s + 1) * vocabSize), want[pos + s]));
				logits.dispose();
				pos += rows;
			}
			console.log(`steered at ${hook}: max |logits WebGPU - TS forward with the vector added| = ${worst.toExponential(2)}`);
			expect(worst).toBeLessThan(1e-3);
			steer.destroy();
			encoder.destroy();
			await runner.dispose();
		});
	}

	it('clamping a feature to 0 and to 2.5, then encoding again at the same hook, reads 0 and 2.5 at every position', async () => {
		const weights = readLlama2cCheckpoint(await fetchFixture('stories260K.bin'));
		const hook = 'blocks.2.hook_resid_pre';
		const f = 5;
		const sae = testSae(hook, f);
		const runner = await SegmentRunner.create(ort, buildLlamaOnnx(weights, [2]), 'webgpu');
		const device = await loupeGpuDevice();
		const steer = await SteerKernel.create(device);
		const encoder = await SaeEncoder.create(device, sae);
		for (const target of [0, 2.5]) {
			runner.reset();
			let before: Float32Array | null = null;
			let after: Float32Array | null = null;
			const { logits } = await runner.forward(tokens, async (name, resid, n) => {
				if (name !== hook) return;
				const buf = resid.gpuBuffer as GPUBuffer;
				await encoder.encodeTopK(buf, n, 1);
				before = await encoder.readFeature(f, n);
				const clamp: SteerFeature[] = [{ feature: f, mode: 'clamp', value: target, normalize: false }];
				steer.apply(
					buf,
					n,
					sae.cfg.dIn,
					() => steerDirections(sae, clamp),
					clamp,
					JSON.stringify(clamp),
					encoder.activationsBuffer,
					sae.cfg.dSae,
					-1
				);
				await encoder.encodeTopK(buf, n, 1);
				after = await encoder.readFeature(f, n);
			});
			logits.dispose();
			expect(Math.min(...before!)).toBeGreaterThan(10); // it was firing strongly everywhere
			for (const a of after!) expect(Math.abs(a - target)).toBeLessThan(1e-3);
		}
		steer.destroy();
		encoder.destroy();
		await runner.dispose();
	});
});

// The transcoder run's activation stores, harvested from stories260K on ORT's WebGPU EP cut at two
// layers' hook_mlp_in and hook_mlp_out (the first and the last: each cut is a session to build), against the plain TypeScript forward's values at those hooks
// (reference-forward.ts's sublayer tensors, token by token): row t of layer L's store is
// [mlp_in | mlp_out] of token t + 1 (BOS left out), contexts one after another.
import { describe, expect, it, inject } from 'vitest';
import { loupeGpuDevice } from '../../src/lib/engine/model/gpu-device';
import * as ort from 'onnxruntime-web/webgpu';
import { readLlama2cCheckpoint } from '../../src/lib/engine/model/llama2c/checkpoint';
import { ReferenceLlama } from '../../src/lib/engine/model/llama2c/reference-forward';
import { buildLlamaOnnx } from '../../src/lib/engine/model/llama2c/to-onnx';
import { SegmentRunner } from '../../src/lib/engine/model/runner';
import { readBuffer } from '../../src/lib/engine/gpu/buffers';
import { harvestPairs, outputHookOf } from '../../src/lib/engine/train/transcoder-harvest';
import { maxAbs, maxAbsDiff } from '../numeric';

const fetchFixture = async (name: string) => (await fetch(`/@fs${inject('stories260KDir')}/${name}`)).arrayBuffer();
ort.env.logLevel = 'error';

describe('transcoder harvest on WebGPU', () => {
	it('stores [hook_mlp_in | hook_mlp_out] of each layer, token by token, as the TS forward computes them', async () => {
		ort.env.wasm.numThreads = 1;
		const weights = readLlama2cCheckpoint(await fetchFixture('stories260K.bin'));
		const { dim: d, nLayers } = weights.config;
		const picked = [0, nLayers - 1];
		const layers = picked.map((l) => ({
			hookIn: `blocks.${l}.hook_mlp_in`,
			hookOut: outputHookOf(`blocks.${l}.hook_mlp_in`),
			dIn: d,
			dOut: d
		}));
		const runner = await SegmentRunner.create(
			ort,
			buildLlamaOnnx(
				weights,
				layers.flatMap((h) => [h.hookIn, h.hookOut])
			),
			'webgpu'
		);
		const device = await loupeGpuDevice();
		const contexts = [
			[1, 403, 407, 261, 300, 17, 45],
			[1, 9, 300],
			[1] // BOS alone: no rows
		];
		const progress: [number, number][] = [];
		const h = await harvestPairs(
			device,
			runner,
			layers,
			contexts,
			(done, rows) => progress.push([done, rows]),
			() => false
		);
		expect(h.rows).toBe(6 + 2);
		expect(h.halted).toBe(false);
		expect(progress).toEqual([
			[1, 6],
			[2, 8],
			[3, 8]
		]);
		const want = picked.map(() => [] as Float32Array[]);
		for (const ids of contexts) {
			const ref = new ReferenceLlama(weights);
			ids.forEach((id, t) => {
				ref.step(id);
				if (t > 0) picked.forEach((l, i) => want[i].push(Float32Array.from([...ref.sublayer[l].mlp_in, ...ref.sublayer[l].mlp_out])));
			});
		}
		let worst = 0;
		for (let l = 0; l < picked.length; l++) {
			const got = new Float32Array(await readBuffer(device, h.stores[l], h.rows * 2 * d * 4));
			for (let r = 0; r < h.rows; r++) {
				const row = got.subarray(r * 2 * d, (r + 1) * 2 * d);
				const err = maxAbsDiff(row, want[l][r]) / Math.max(1, maxAbs(want[l][r]));
				expect(err, `layer ${picked[l]}, row ${r}`).toBeLessThan(1e-4);
				worst = Math.max(worst, err);
			}
			h.stores[l].destroy();
		}
		console.log(
			`harvested ${h.rows} rows at layers ${picked.join(' and ')}: max relative |store − TS forward| = ${worst.toExponential(2)}`
		);

		// Stop before the first context: nothing harvested, said halted.
		const stopped = await harvestPairs(
			device,
			runner,
			layers.slice(0, 1),
			contexts,
			() => {},
			() => true
		);
		expect(stopped).toMatchObject({ rows: 0, halted: true });
		stopped.stores.forEach((s) => s.destroy());
		await runner.dispose();
	});
});

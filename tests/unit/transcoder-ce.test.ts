// A transcoder run's evaluation (train/transcoder-ce.ts) on stories260K's graph on wasm, cut at two
// layers' hook_mlp_in and hook_mlp_out (the first and the last: each cut is a session to build), against the plain TypeScript forward (reference-forward.ts)
// with the same edits: the clean CE, the CE with those MLP outputs zeroed and with those MLPs replaced
// by seeded random skip transcoders reading the replaced model's own MLP input (BOS left as it is),
// and each layer's held-out fraction of MLP-output variance explained, summed here from scratch.
import { describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-web';
import { readLlama2cCheckpoint } from '../../src/lib/engine/model/llama2c/checkpoint';
import { ReferenceLlama } from '../../src/lib/engine/model/llama2c/reference-forward';
import { buildLlamaOnnx } from '../../src/lib/engine/model/llama2c/to-onnx';
import { SegmentRunner } from '../../src/lib/engine/model/runner';
import { Transcoder } from '../../src/lib/engine/sae/transcoder';
import { TranscoderCe } from '../../src/lib/engine/train/transcoder-ce';
import { seededRandom } from '../../src/lib/engine/sample/prng';
import { readArrayBuffer, stories260KDir } from '../fixtures';

ort.env.wasm.numThreads = 1;
ort.env.logLevel = 'error';

const weights = readLlama2cCheckpoint(readArrayBuffer(`${stories260KDir}/stories260K.bin`), 'stories260K.bin');
const { nLayers, dim: d } = weights.config;
const layers = [0, nLayers - 1];
const contexts = [
	[1, 403, 407, 261, 300, 17, 45, 9],
	[1, 30, 262, 311, 88]
];

/** A ReLU skip transcoder with small seeded weights (it must not blow the residual up). */
function randomTranscoder(l: number): Transcoder {
	const r = seededRandom(100 + l);
	const u = (n: number, s: number) => Float32Array.from({ length: n }, () => (2 * r() - 1) * s);
	const n = 24;
	return new Transcoder(
		{
			architecture: 'relu',
			dIn: d,
			dSae: n,
			dOut: d,
			hookName: `blocks.${l}.hook_mlp_in`,
			hookNameOut: `blocks.${l}.hook_mlp_out`,
			skip: true,
			applyBDecToInput: false,
			normalizeActivations: 'none',
			centerInput: false,
			format: 'test',
			dtype: 'float32',
			name: `random L${l}`
		},
		{ wEnc: u(d * n, 0.3), bEnc: u(n, 0.1), wDec: u(n * d, 0.1), bDec: u(d, 0.02), wSkip: u(d * d, 0.05) }
	);
}

/** Cross-entropy of the reference forward with `edit` at each layer's MLP output; also each layer's clean (x, y) rows. */
function reference(mode: 'clean' | 'zero' | Map<number, Transcoder>) {
	let sum = 0;
	let count = 0;
	const pairs = layers.map(() => ({ x: [] as number[], y: [] as number[] }));
	for (const ids of contexts) {
		const ref = new ReferenceLlama(weights);
		let mlpIn = new Float32Array(d);
		for (let t = 0; t < ids.length; t++) {
			const logits = ref.step(ids[t], undefined, (l, hook, v) => {
				if (mode === 'clean' || t === 0 || !layers.includes(l)) return; // BOS as it is
				if (hook === 'mlp_in') mlpIn = v.slice();
				if (hook === 'mlp_out') v.set(mode === 'zero' ? new Float32Array(d) : mode.get(l)!.forward(mlpIn, 1).out);
			});
			if (mode === 'clean' && t > 0)
				layers.forEach((l, i) => (pairs[i].x.push(...ref.sublayer[l].mlp_in), pairs[i].y.push(...ref.sublayer[l].mlp_out)));
			if (t + 1 === ids.length) break;
			const max = Math.max(...logits);
			const z = logits.reduce((a, x) => a + Math.exp(x - max), 0);
			sum += Math.log(z) + max - logits[ids[t + 1]];
			count++;
		}
	}
	return { ce: sum / count, pairs };
}

describe('transcoder run evaluation', () => {
	it(
		'CE clean, zeroed and with the MLPs replaced, and variance explained, as the TS forward gives them',
		{ timeout: 120_000 },
		async () => {
			const hooks = layers.map((l) => ({
				hookIn: `blocks.${l}.hook_mlp_in`,
				hookOut: `blocks.${l}.hook_mlp_out`,
				dIn: d,
				dOut: d
			}));
			const runner = await SegmentRunner.create(
				ort,
				buildLlamaOnnx(
					weights,
					hooks.flatMap((h) => [h.hookIn, h.hookOut])
				),
				'wasm'
			);
			const tcs = layers.map((l) => randomTranscoder(l));
			// No GPU: the wasm runner's tensors are on the CPU, which the evaluator reads and writes in place.
			const ce = new TranscoderCe(runner, null as unknown as GPUDevice, hooks, contexts);
			const got = await ce.recovered(tcs);
			const clean = reference('clean');
			const zero = reference('zero').ce;
			const replaced = reference(new Map(layers.map((l, i) => [l, tcs[i]]))).ce;
			console.log(
				`CE clean ${got.clean.toFixed(4)} (TS ${clean.ce.toFixed(4)}), zeroed ${got.zeroAblated.toFixed(4)} (${zero.toFixed(4)}), replaced ${got.spliced.toFixed(4)} (${replaced.toFixed(4)}); EV ${got.layerEv.map((v) => v.toFixed(3)).join(', ')}`
			);
			expect(Math.abs(got.clean - clean.ce)).toBeLessThan(1e-4);
			expect(Math.abs(got.zeroAblated - zero)).toBeLessThan(1e-4);
			expect(Math.abs(got.spliced - replaced)).toBeLessThan(1e-4);
			expect(Math.abs(replaced - clean.ce), 'the random transcoders change the loss').toBeGreaterThan(0.05);
			expect(got.recovered).toBeCloseTo((zero - replaced) / (zero - clean.ce), 4);
			expect(got.replaced).toBe(layers.length);
			for (let l = 0; l < layers.length; l++) {
				const { x, y } = clean.pairs[l];
				const rows = y.length / d;
				const out = tcs[l].forward(Float32Array.from(x), rows).out;
				let sse = 0;
				let sst = 0;
				for (let i = 0; i < d; i++) {
					let mean = 0;
					for (let r = 0; r < rows; r++) mean += y[r * d + i] / rows;
					for (let r = 0; r < rows; r++) {
						sse += (y[r * d + i] - out[r * d + i]) ** 2;
						sst += (y[r * d + i] - mean) ** 2;
					}
				}
				expect(Math.abs(got.layerEv[l] - (1 - sse / sst)), `layer ${l}`).toBeLessThan(1e-4);
			}
			// A second evaluation runs only the replaced passes and gives the same figures.
			expect((await ce.recovered(tcs)).spliced).toBeCloseTo(got.spliced, 6);
			await runner.dispose();
		}
	);
});

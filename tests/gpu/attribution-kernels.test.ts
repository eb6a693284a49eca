import { describe, expect, inject, it } from 'vitest';
import { readLlama2cCheckpoint } from '../../src/lib/engine/model/llama2c/checkpoint';
import { attentionMixBackward, contractSources, matTransposeRows } from '../../src/lib/engine/attribution/backward-ops';
import { AttrRecorder, attrPipelines, gpuBackend } from '../../src/lib/engine/attribution/gpu-backend';
import { attribute } from '../../src/lib/engine/attribution/graph';
import { buildGraphJson } from '../../src/lib/engine/attribution/graph-json';
import { validateGraphJson } from '../../src/lib/engine/attribution/graph-schema';
import { createStorage, readBuffer, storageFrom } from '../../src/lib/engine/gpu/buffers';
import { randomTranscoders } from '../attribution-reference';
import { maxAbs, maxAbsDiff } from '../numeric';
import { rng, testDevice } from './device';

declare module 'vitest' {
	export interface ProvidedContext {
		stories260KDir: string;
	}
}

const device = await testDevice();
const pl = await attrPipelines(device);
const rand = rng(5);
const f64 = (n: number) => Float64Array.from({ length: n }, rand);
const u32 = (a: ArrayLike<number>) => {
	const b = createStorage(device, a.length * 4, 'test.u32');
	device.queue.writeBuffer(b, 0, Uint32Array.from(a));
	return b;
};
const read = async (b: GPUBuffer, n: number) => new Float32Array(await readBuffer(device, b, n * 4));
const dummy = createStorage(device, 16, 'dummy');

describe('attribution kernels against their TS references', () => {
	// Shapes that cross the 64-wide tiles: n_out 100 (two chunks of x), n_in 70, rows not a multiple of 64.
	const [B, P, nOut, nIn] = [3, 5, 100, 70];

	it('attr_mat_t: Wᵀx, with the frozen norm diagonal and a residual, and plain', async () => {
		const x = f64(B * P * nOut);
		const w = Float32Array.from({ length: nOut * nIn }, rand);
		const scale = f64(P * nIn);
		const base = f64(B * P * nIn);
		const want = matTransposeRows(x, w, B * P, nOut, nIn, P, scale, base.slice());
		const wantPlain = matTransposeRows(x, w, B * P, nOut, nIn, P);
		const out = createStorage(device, B * P * nIn * 4, 'out');
		const out2 = createStorage(device, B * P * nIn * 4, 'out2');
		const rec = new AttrRecorder(device, pl);
		const [xb, wb, sb, bb] = [
			storageFrom(device, Float32Array.from(x), 'x'),
			storageFrom(device, w, 'w'),
			storageFrom(device, Float32Array.from(scale), 's'),
			storageFrom(device, Float32Array.from(base), 'b')
		];
		rec.matT(xb, wb, B * P, nOut, nIn, P, out, dummy, sb, bb);
		rec.matT(xb, wb, B * P, nOut, nIn, P, out2, dummy);
		rec.submit();
		expect(maxAbsDiff(await read(out, want.length), want)).toBeLessThan(1e-5 * maxAbs(want));
		expect(maxAbsDiff(await read(out2, wantPlain.length), wantPlain)).toBeLessThan(1e-5 * maxAbs(wantPlain));
		rec.free();
	});

	it('attr_attn_mix: grouped-query attention backward with frozen causal patterns', async () => {
		const [nHeads, nKv, hs] = [8, 4, 9];
		const dz = f64(B * P * nHeads * hs);
		const pattern = new Float64Array(nHeads * P * P);
		for (let h = 0; h < nHeads; h++)
			for (let p = 0; p < P; p++) for (let t = 0; t <= p; t++) pattern[(h * P + p) * P + t] = Math.abs(rand());
		const want = attentionMixBackward(dz, pattern, B, P, nHeads, nKv, hs);
		const dv = createStorage(device, want.length * 4, 'dv');
		const rec = new AttrRecorder(device, pl);
		rec.attnMix(
			storageFrom(device, Float32Array.from(dz), 'dz'),
			storageFrom(device, Float32Array.from(pattern), 'A'),
			dv,
			B,
			P,
			nHeads,
			nKv,
			hs
		);
		rec.submit();
		expect(maxAbsDiff(await read(dv, want.length), want)).toBeLessThan(1e-5 * maxAbs(want));
		rec.free();
	});

	it('attr_contract and attr_inject: edges read at an offset of the batch row; targets injected in place', async () => {
		const dim = 70;
		const nSrc = 130;
		const g = f64(B * P * dim);
		const src = f64(nSrc * dim);
		const pos = Int32Array.from({ length: nSrc }, (_, s) => s % P);
		const want = contractSources(g, B, P, dim, src, pos);
		const [total, offset] = [nSrc + 7, 7];
		const out = createStorage(device, B * total * 4, 'out');
		const gb = storageFrom(device, Float32Array.from(g), 'g');
		const rec = new AttrRecorder(device, pl);
		rec.contract(gb, storageFrom(device, Float32Array.from(src), 'src'), u32(pos), out, B, P, dim, nSrc, total, offset);
		// then inject two targets' vectors at (b, pos) = (2, 4) and (0, 1)
		const vecs = f64(2 * dim);
		rec.inject(storageFrom(device, Float32Array.from(vecs), 'v'), u32([2, 4, 0, 1]), gb, 2, P, dim);
		rec.submit();
		const got = await read(out, B * total);
		const rows = Float64Array.from({ length: B * nSrc }, (_, i) => got[Math.floor(i / nSrc) * total + offset + (i % nSrc)]);
		expect(maxAbsDiff(rows, want)).toBeLessThan(1e-5 * maxAbs(want));
		const wantG = g.slice();
		for (let d = 0; d < dim; d++) {
			wantG[(2 * P + 4) * dim + d] += vecs[d];
			wantG[(0 * P + 1) * dim + d] += vecs[dim + d];
		}
		expect(maxAbsDiff(await read(gb, g.length), wantG)).toBeLessThan(1e-6);
		rec.free();
	});
});

describe('the attribution on the GPU', () => {
	it('gives the TypeScript path’s graph on stories260K with random transcoders (edges, biases, completeness)', async () => {
		const buf = await (await fetch(`/@fs${inject('stories260KDir')}/stories260K.bin`)).arrayBuffer();
		const weights = readLlama2cCheckpoint(buf, 'stories260K.bin');
		const tokens = [1, 365, 1233 % 512, 263]; // BOS and three in-vocabulary ids
		const tcs = randomTranscoders(weights.config, 7);
		const cpu = (await attribute(weights, tokens, tcs, { batchSize: 16 })).graph;
		let dispose = () => {};
		const t0 = performance.now();
		const gpu = (
			await attribute(weights, tokens, tcs, {
				batchSize: 16,
				backend: async (ctx) => {
					const b = await gpuBackend(device, ctx);
					dispose = b.dispose;
					return b;
				}
			})
		).graph;
		const ms = performance.now() - t0;
		dispose();
		const scale = maxAbs(cpu.edges);
		const diff = maxAbsDiff(gpu.edges, cpu.edges);
		let complete = 0;
		for (let t = 0; t < gpu.nTargets; t++) {
			let s = gpu.bias[t];
			let mag = Math.abs(gpu.bias[t]);
			for (let j = 0; j < gpu.nSources; j++) {
				s += gpu.edges[t * gpu.nSources + j];
				mag += Math.abs(gpu.edges[t * gpu.nSources + j]);
			}
			complete = Math.max(complete, Math.abs(s - gpu.input[t]) / Math.max(mag, 1e-6));
		}
		console.log(
			`GPU attribution: ${gpu.nTargets} × ${gpu.nSources} edges in ${ms.toFixed(0)} ms; max |gpu − ts| ${diff.toExponential(2)} (largest ${scale.toFixed(3)}); completeness ${complete.toExponential(2)}`
		);
		expect(diff).toBeLessThan(1e-4 * scale);
		expect(maxAbsDiff(gpu.bias, cpu.bias)).toBeLessThan(1e-4 * Math.max(1, maxAbs(cpu.bias)));
		expect(complete).toBeLessThan(1e-4);
		// The app's and the CLI's path to a file, on the device: the same graph, schema-valid.
		const { graph, json } = await buildGraphJson(weights, tokens, tcs, {
			batchSize: 16,
			device,
			slug: 't',
			scan: 'stories260K',
			prompt: '',
			decode: String
		});
		expect(validateGraphJson(json)).toEqual([]);
		expect(maxAbsDiff(graph.edges, gpu.edges)).toBe(0);
		expect((json.links as unknown[]).length).toBe(gpu.edges.filter((e) => e !== 0).length);
	});
});

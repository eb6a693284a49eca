/**
 * The benchmarks the engine runs on this device (the /bench page and `npm run bench`): the SAE
 * kernels against onnxruntime-web, training against TensorFlow.js, the cost of hook points on
 * the loaded model, the default model's speed levers (the fused graph, batched side by side), and
 * whether switching and a long steered session leak (leaks.ts). Each bench file measures; this one picks the shapes and checks for WebGPU.
 */
import * as ort from 'onnxruntime-web/webgpu';
import { LoupeError } from '../errors';
import type { ModelSession } from '../model/session';
import { benchSaeEncode } from './sae-encode';
import type { BenchLine } from './bench-line';
import { benchSaeTraining } from './sae-train';
import { benchSegmentation } from './segmentation';
import { benchFusedGenerate } from './fused-generate';
import { benchSideBySide } from './side-by-side';
import { readLlama2cCheckpoint } from '../model/llama2c/checkpoint';
import { benchLeaks } from './leaks';
import { benchAttribution } from '../attribution/bench';
import { randomTranscoders } from '../attribution/random-transcoders';
import { Llama2cTokenizer } from '../model/llama2c/tokenizer';

/** Which benchmark the /bench page asks for (its query string picks one). */
export type BenchName = 'kernels' | 'training' | 'segmentation' | 'fused' | 'leaks' | 'attribution';

export class Benchmarks {
	constructor(private session: ModelSession) {}

	/** One entry point for the facade: `hub` is where the fused bench fetches stories260K. */
	run(name: BenchName, small: boolean, hub: string): Promise<BenchLine[]> {
		if (name === 'training') return this.training(small);
		if (name === 'segmentation') return this.segmentation();
		if (name === 'fused') return this.fused(small, hub);
		if (name === 'leaks') return this.leaks(small, hub);
		if (name === 'attribution') return this.attribution(small, hub);
		return this.kernels(small);
	}

	/** `what`: the sentence's start, e.g. 'The kernel benchmarks need'. */
	private async requireWebGpu(what: string) {
		if ((await this.session.init()).backend !== 'webgpu')
			throw new LoupeError('no-webgpu', `${what} WebGPU, which this browser does not offer.`, 'Open this page in a browser with WebGPU.');
	}

	/** SAE encoding with top-k: Loupe's WGSL kernels against the same graph in onnxruntime-web. */
	async kernels(small: boolean): Promise<BenchLine[]> {
		await this.requireWebGpu('The kernel benchmarks need');
		const shapes = small
			? [
					{ tokens: 1, dIn: 64, dSae: 512 },
					{ tokens: 128, dIn: 64, dSae: 512 }
				]
			: [
					{ tokens: 1, dIn: 768, dSae: 24576 },
					{ tokens: 128, dIn: 768, dSae: 24576 }
				];
		return benchSaeEncode(ort, shapes, small ? 9 : 5);
	}

	/** Training tokens/s: the WGSL trainer against the same SAE in TensorFlow.js (WebGPU), same adapter. */
	async training(small: boolean): Promise<BenchLine[]> {
		await this.requireWebGpu('The training benchmark needs');
		const shapes = small
			? [{ d: 64, n: 512, batch: 256, k: 16 }]
			: [
					{ d: 64, n: 512, batch: 256, k: 16 },
					{ d: 128, n: 2048, batch: 256, k: 32 }
				];
		return benchSaeTraining(shapes, small ? 20 : 30, small ? 3 : 5);
	}

	/** Tokens/s of the loaded model cut at 1 and 3 hooks over uncut. */
	async segmentation(): Promise<BenchLine[]> {
		const m = this.session.requireModel();
		return this.session.locked(async () => {
			const { nLayers, dModel } = m.source.shape;
			return benchSegmentation(ort, m.source.segment, nLayers, m.runner.backend, `${m.info.name} (${nLayers} layers, d_model ${dModel})`);
		});
	}

	/**
	 * stories260K's speed levers on this GPU: the fused graph over the plain one (tokens/s, and GPU
	 * dispatches for one generated token) and side by side as one batch of two over two runs, on
	 * WebGPU and on wasm.
	 * The checkpoint comes from the hub (or its mirror), as the app fetches it.
	 */
	async fused(small: boolean, hub: string): Promise<BenchLine[]> {
		await this.requireWebGpu('The fused-graph benchmarks need');
		const weights = readLlama2cCheckpoint(await stories260K(hub, 'stories260K.bin'), 'stories260K.bin');
		return this.session.locked(async () => [
			...(await benchFusedGenerate(ort, weights, 'webgpu', { tokens: small ? 16 : 64, runs: small ? 3 : 5, attentions: ['ops', 'gqa'] })),
			...(await benchSideBySide(ort, weights, 'webgpu', { tokens: small ? 16 : 48, runs: small ? 7 : 9 })), // short runs: a median of more pairs
			// And on wasm: where the app runs stories260K on a software adapter (model/backend.ts), which
			// is also where the GPU's work is done by the same two cores that drive it.
			...(await benchSideBySide(ort, weights, 'wasm', { tokens: small ? 16 : 48, runs: small ? 7 : 9 }))
		]);
	}

	/**
	 * GPU buffers and the worker's heap across model, SAE and hook switches and a long steered
	 * session (leaks.ts): the 20 switches and 1,000 tokens, or 3 and 200 when small.
	 * `hub`: where the second model (the catalogue's GPT-2, or its mirrored stand-in) comes from.
	 */
	async leaks(small: boolean, hub: string): Promise<BenchLine[]> {
		await this.requireWebGpu('The no-leaks bench needs');
		return benchLeaks(this.session, { switches: small ? 3 : 20, tokens: small ? 200 : 1000, steerEvery: 10, hub });
	}

	/**
	 * Attribution edges (attribution/bench.ts, GRAPH's): Loupe's WGSL backward passes against
	 * TensorFlow.js autograd on its WebGPU backend, on ORT's own device, stories260K with seeded
	 * random transcoders at every layer. The 16-token prompt, or 4 tokens when small: on a
	 * software adapter TF.js takes minutes a run at 16 (tests/gpu/attribution-tfjs.test.ts).
	 */
	async attribution(small: boolean, hub: string): Promise<BenchLine[]> {
		await this.requireWebGpu('The attribution benchmark needs');
		const weights = readLlama2cCheckpoint(await stories260K(hub, 'stories260K.bin'), 'stories260K.bin');
		const tokenizer = new Llama2cTokenizer(await stories260K(hub, 'tok512.bin'), weights.config.vocabSize);
		const n = small ? 4 : 16;
		const tokens = tokenizer
			.encode('Once upon a time, there was a little girl named Lily. She loved to play outside in the sun.')
			.slice(0, n);
		if (tokens.length < n) throw new Error(`the bench prompt is ${tokens.length} tokens, not ${n}`);
		return this.session.locked(async () => {
			const device = await this.session.gpuDevice(); // Loupe's device, the one TF.js's peer gets too
			return [await benchAttribution(device, weights, tokens, randomTranscoders(weights.config, 7), { runs: small ? 1 : 3 })];
		});
	}
}

/** A stories260K file from the hub (or its mirror), as the app fetches it. */
async function stories260K(hub: string, file: string): Promise<ArrayBuffer> {
	const url = `${hub.replace(/\/+$/, '')}/karpathy/tinyllamas/resolve/main/stories260K/${file}`;
	const res = await fetch(url);
	if (!res.ok)
		throw new LoupeError(
			'not-found',
			`${file} could not be fetched from ${url} (HTTP ${res.status}).`,
			'Point ?hub= at a hub or mirror that has karpathy/tinyllamas.'
		);
	return res.arrayBuffer();
}

/**
 * The Engine: everything that touches the model, the GPU and storage, running in one dedicated
 * Web Worker (worker.ts exposes it with comlink). Calls return plain data; failures come back as
 * `{ ok: false, error }` with a message for people (see errors.ts).
 */
import * as ort from 'onnxruntime-web/webgpu';
import { LoupeError, toErrorInfo, type ErrorInfo } from './errors';
import { readLlama2cCheckpoint, type LlamaConfig, type LlamaWeights } from './model/llama2c/checkpoint';
import { Llama2cTokenizer } from './model/llama2c/tokenizer';
import { buildLlamaOnnx } from './model/llama2c/to-onnx';
import { SegmentRunner, type Backend } from './model/runner';
import { generate, type GenerateResult, type TokenEvent } from './model/generate';
import { allHookNames, boundaryName, hookBoundary } from './model/hooks';
import { findModel } from './model/catalogue';
import { LogitsProcessor } from './gpu/logits-process';
import type { SamplingSettings } from './sample/sampler';
import { readSaeFiles, type SaeFile } from './sae/load';
import { checkSaeFitsModel } from './sae/validate';
import { SaeSession } from './sae/session';
import { describePreprocessing, type SaeConfig } from './sae/config';
import type { RankedItem } from './sae/features';
import {
	deleteCachedFile, fetchModelFile, hubFileUrl, listCachedFiles,
	type CachedFile, type DownloadProgress, type FetchedFile
} from './store/model-cache';

export type Result<T> = { ok: true; value: T } | { ok: false; error: ErrorInfo };

export interface EngineStatus {
	backend: Backend;
	adapter: string; // e.g. "SwiftShader (google)" or "no WebGPU"
	/** Why the engine runs on wasm instead of WebGPU, in words for people. */
	fallbackReason?: string;
	crossOriginIsolated: boolean;
	threads: number;
}

export interface ModelInfo {
	id: string;
	name: string;
	source: 'hub' | 'files';
	backend: Backend;
	config: LlamaConfig;
	parameters: number;
	hooks: string[];
	cutAt: string[];
	loadMs: number;
	fromCache: boolean;
	warnings: ErrorInfo[];
}

export interface LoadFromHub {
	model: string; // catalogue id
	hub: string;
	/** Hook points to cut the graph at, e.g. ['blocks.2.hook_resid_post']. */
	hooks?: string[];
}

export type EngineEvent = { type: 'device-lost'; error: ErrorInfo };

interface Loaded {
	info: ModelInfo;
	weights: LlamaWeights;
	runner: SegmentRunner;
	tokenizer: Llama2cTokenizer;
	processor: LogitsProcessor | null;
	sae: { session: SaeSession; info: SaeInfo; boundary: number } | null;
}

export interface SaeInfo {
	name: string;
	cfg: SaeConfig;
	preprocessing: string[];
	source: string; // where it came from: a hub folder or file names
	onGpu: boolean;
}

/** A hub folder holding one SAE (SAELens, Gemma Scope or Gemma Scope 2 files). */
export interface SaeFromHub {
	hub: string;
	repo: string;
	revision?: string;
	folder: string;
	hookName?: string;
}

export interface AnalyzedToken {
	id: number;
	piece: string;
	features: RankedItem[]; // the token's top features, strongest first
}

export interface FeatureDetails {
	feature: number;
	activations: number[]; // at each token of the last analysed text
	positiveLogits: (RankedItem & { piece: string })[];
	negativeLogits: (RankedItem & { piece: string })[];
	nearest: RankedItem[];
}

async function attempt<T>(f: () => Promise<T>): Promise<Result<T>> {
	try {
		return { ok: true, value: await f() };
	} catch (e) {
		return { ok: false, error: toErrorInfo(e) };
	}
}

export class Engine {
	private status: EngineStatus | null = null;
	private loaded: Loaded | null = null;
	private device: GPUDevice | null = null;
	private lost: ErrorInfo | null = null;
	private stopRequested = false;
	private busy = false;
	private onEvent: (e: EngineEvent) => void = () => {};

	/** Finds out what this browser can run. Call once; `onEvent` hears about device loss. */
	async init(onEvent?: (e: EngineEvent) => void): Promise<EngineStatus> {
		if (onEvent) this.onEvent = onEvent;
		if (this.status) return this.status;
		const threads = self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
		ort.env.wasm.numThreads = threads;
		ort.env.logLevel = 'error';
		let backend: Backend = 'wasm';
		let adapter = 'no WebGPU';
		let fallbackReason: string | undefined;
		if (!('gpu' in navigator) || !navigator.gpu) {
			fallbackReason = 'This browser has no WebGPU (navigator.gpu is missing), so the model runs on the CPU (WebAssembly), more slowly. Chrome, Edge and recent Safari and Firefox have WebGPU.';
		} else {
			const a = await navigator.gpu.requestAdapter().catch(() => null);
			if (!a) fallbackReason = 'WebGPU is present but no GPU adapter is available (it may be disabled or blocklisted), so the model runs on the CPU (WebAssembly), more slowly.';
			else {
				backend = 'webgpu';
				const i = a.info;
				adapter = [i.description || i.architecture || i.device, i.vendor && `(${i.vendor})`].filter(Boolean).join(' ') || 'WebGPU adapter';
			}
		}
		this.status = { backend, adapter, fallbackReason, crossOriginIsolated: self.crossOriginIsolated, threads };
		return this.status;
	}

	/** Loads a catalogue model from a hub (or its mirror), from the cache when it is there. */
	async loadFromHub(req: LoadFromHub, onProgress: (p: DownloadProgress) => void): Promise<Result<ModelInfo>> {
		return attempt(async () => {
			const entry = findModel(req.model);
			if (!entry) throw new LoupeError('not-found', `There is no model "${req.model}" in Loupe's catalogue.`, 'Pick a model from the list, or open your own files.');
			const t0 = performance.now();
			const url = (path: string) => hubFileUrl(req.hub, entry.repo, entry.revision, path);
			const urls = [url(entry.files.checkpoint), url(entry.files.tokenizer)];
			const [ckpt, tok] = await Promise.all(urls.map((u) => fetchModelFile(u, onProgress)));
			try {
				return await this.build(entry.id, entry.name, 'hub', ckpt, tok, req.hooks ?? [], t0, entry.files.checkpoint.split('/').pop(), entry.files.tokenizer.split('/').pop());
			} catch (e) {
				// A file that does not parse must not be served from the cache next time.
				if (e instanceof LoupeError && ['truncated', 'not-a-checkpoint', 'unsupported-checkpoint', 'not-a-tokenizer', 'tokenizer-mismatch'].includes(e.code))
					await Promise.all(urls.map(deleteCachedFile));
				throw e;
			}
		});
	}

	/** Loads a llama2.c checkpoint and tokenizer the user picked from disk. */
	async loadFromFiles(checkpoint: File, tokenizer: File, hooks: string[] = []): Promise<Result<ModelInfo>> {
		return attempt(async () => {
			const t0 = performance.now();
			const read = async (f: File): Promise<FetchedFile> => ({ buffer: await f.arrayBuffer(), fromCache: false });
			const [ckpt, tok] = await Promise.all([read(checkpoint), read(tokenizer)]);
			return this.build(`file:${checkpoint.name}`, checkpoint.name, 'files', ckpt, tok, hooks, t0, checkpoint.name, tokenizer.name);
		});
	}

	private async build(
		id: string, name: string, source: ModelInfo['source'], ckpt: FetchedFile, tok: FetchedFile,
		hooks: string[], t0: number, ckptName = name, tokName = 'The tokenizer'
	): Promise<ModelInfo> {
		this.assertDevice();
		const status = await this.init();
		const weights = readLlama2cCheckpoint(ckpt.buffer, ckptName);
		const tokenizer = new Llama2cTokenizer(tok.buffer, weights.config.vocabSize, tokName);
		const cuts = hooks.map((h) => hookBoundary(h, weights.config.nLayers));
		const model = buildLlamaOnnx(weights, cuts);
		// The old model is released only after the new one exists: ORT destroys its GPU device
		// when its last WebGPU session goes.
		const previous = this.loaded; // still usable if this load fails
		let backend = status.backend;
		let runner: SegmentRunner;
		try {
			runner = await SegmentRunner.create(ort, model, backend);
		} catch (e) {
			if (backend !== 'webgpu') throw e;
			// The GPU path failed (driver, limits): run on the CPU rather than not at all, and say so.
			status.fallbackReason = `WebGPU could not run this model (${e instanceof Error ? e.message : e}); running on the CPU (WebAssembly) instead.`;
			status.backend = backend = 'wasm';
			runner = await SegmentRunner.create(ort, model, backend);
		}
		let processor: LogitsProcessor | null = null;
		if (backend === 'webgpu') {
			const device = await this.gpuDevice();
			processor = await LogitsProcessor.create(device, weights.config.vocabSize);
		}
		const c = weights.config;
		const parameters = weights.tokenEmbedding.length + c.nLayers * (2 * c.dim + 2 * c.dim * c.dim + 2 * c.dim * ((c.dim * c.nKvHeads) / c.nHeads) + 3 * c.dim * c.hiddenDim) + c.dim + (c.sharedClassifier ? 0 : c.vocabSize * c.dim);
		const info: ModelInfo = {
			id, name, source, backend, config: c, parameters,
			hooks: allHookNames(c.nLayers),
			cutAt: model.segments.flatMap((s) => (s.residualOut ? [s.residualOut] : [])),
			loadMs: performance.now() - t0,
			fromCache: ckpt.fromCache && tok.fromCache,
			warnings: [ckpt.cacheWarning, tok.cacheWarning].filter((w): w is NonNullable<typeof w> => !!w)
		};
		this.loaded = { info, weights, runner, tokenizer, processor, sae: null };
		previous?.processor?.destroy();
		previous?.sae?.session.destroy();
		await previous?.runner.dispose();
		return info;
	}

	/** ORT's own GPUDevice (kernels must run on it to share buffers with the model). */
	async gpuDevice(): Promise<GPUDevice> {
		const device = (await ort.env.webgpu.device) as GPUDevice;
		if (device === this.device) return device;
		this.device = device;
		device.lost.then((info) => {
			if (device !== this.device) return; // an earlier device ORT has retired
			this.lost = {
				code: 'gpu-lost',
				message: `The GPU device was lost (${info.reason === 'destroyed' ? 'it was destroyed' : info.message || 'the driver reset or the GPU was removed'}). The model on it is gone.`,
				action: 'Press "Restart engine" (or reload the page): the model loads again from the cache.'
			};
			this.loaded = null;
			this.onEvent({ type: 'device-lost', error: this.lost });
		});
		return device;
	}

	private assertDevice() {
		if (this.lost) throw new LoupeError(this.lost.code, this.lost.message, this.lost.action);
	}

	private requireModel(): Loaded {
		this.assertDevice();
		if (!this.loaded) throw new LoupeError('model-failed', 'No model is loaded.', 'Pick a model and wait for it to load.');
		return this.loaded;
	}

	/** Loads an SAE from a hub folder: SAELens files first, then Gemma Scope, then Gemma Scope 2. */
	async loadSaeFromHub(req: SaeFromHub, onProgress: (p: DownloadProgress) => void): Promise<Result<SaeInfo>> {
		return attempt(async () => {
			this.requireModel();
			const url = (file: string) => hubFileUrl(req.hub, req.repo, req.revision ?? 'main', `${req.folder.replace(/\/+$/, '')}/${file}`);
			const get = async (file: string): Promise<SaeFile | null> => {
				try {
					return { name: `${req.folder}/${file}`, buffer: (await fetchModelFile(url(file), onProgress)).buffer };
				} catch (e) {
					if (e instanceof LoupeError && e.code === 'not-found') return null;
					throw e;
				}
			};
			let files: SaeFile[] = [];
			const cfg = await get('cfg.json');
			if (cfg) files = [cfg, (await get('sae_weights.safetensors')) ?? cfg];
			else {
				const npz = await get('params.npz');
				if (npz) files = [npz];
				else {
					const params = await get('params.safetensors');
					const config = params && (await get('config.json'));
					files = [params, config].filter((f): f is SaeFile => !!f);
				}
			}
			if (!files.length)
				throw new LoupeError('not-found', `No SAE files were found in ${req.repo}/${req.folder} (looked for cfg.json, params.npz and params.safetensors).`, 'Check the repository and folder names.');
			try {
				return await this.attachSae(files, `${req.repo}/${req.folder}`, req.hookName);
			} catch (e) {
				// Files that do not parse must not be served from the cache next time.
				if (e instanceof LoupeError && e.code === 'not-an-sae') await Promise.all(files.map((f) => deleteCachedFile(url(f.name.split('/').pop()!))));
				throw e;
			}
		});
	}

	/** Loads an SAE from files the user picked (an SAELens folder's files, a params.npz, …). */
	async loadSaeFromFiles(files: File[], hookName?: string): Promise<Result<SaeInfo>> {
		return attempt(async () => {
			this.requireModel();
			const read = await Promise.all(files.map(async (f) => ({ name: f.webkitRelativePath || f.name, buffer: await f.arrayBuffer() })));
			return this.attachSae(read, files.map((f) => f.name).join(' + '), hookName);
		});
	}

	private async attachSae(files: SaeFile[], source: string, hookName?: string): Promise<SaeInfo> {
		const m = this.requireModel();
		const c = m.weights.config;
		const { cfg, weights } = readSaeFiles(files, { hookName });
		checkSaeFitsModel(cfg, { name: m.info.name, nLayers: c.nLayers, dModel: c.dim });
		const boundary = hookBoundary(cfg.hookName, c.nLayers);
		// The model must be cut at the SAE's hook so the residual can be read there.
		if (!m.runner.model.cuts.includes(boundary)) {
			const runner = await SegmentRunner.create(ort, buildLlamaOnnx(m.weights, [...m.runner.model.cuts, boundary]), m.runner.backend);
			await m.runner.dispose();
			m.runner = runner;
			m.info.cutAt = runner.model.segments.flatMap((s) => (s.residualOut ? [s.residualOut] : []));
		}
		const device = m.runner.backend === 'webgpu' ? await this.gpuDevice() : null;
		const session = await SaeSession.create(cfg, weights, device, {
			vocabSize: c.vocabSize, dModel: c.dim, classifier: m.weights.classifier, normWeight: m.weights.rmsFinal
		});
		m.sae?.session.destroy();
		const info: SaeInfo = { name: cfg.name, cfg, preprocessing: describePreprocessing(cfg), source, onGpu: session.onGpu };
		m.sae = { session, info, boundary };
		return info;
	}

	/** Runs the prompt and returns each token with its top `k` SAE features. */
	async analyze(prompt: string, k = 8): Promise<Result<AnalyzedToken[]>> {
		return attempt(async () => {
			const m = this.requireModel();
			if (!m.sae) throw new LoupeError('model-failed', 'No SAE is loaded.', 'Load an SAE for this model first.');
			if (this.busy) throw new LoupeError('model-failed', 'The model is busy writing.', 'Press Stop first.');
			this.busy = true;
			try {
				const ids = m.tokenizer.encode(prompt);
				if (ids.length > m.weights.config.seqLen) throw new LoupeError('model-failed', `The text is ${ids.length} tokens; this model reads at most ${m.weights.config.seqLen}.`, 'Shorten the text.');
				const hook = boundaryName(m.sae.boundary, m.weights.config.nLayers);
				let encoded: Awaited<ReturnType<SaeSession['encode']>> | null = null;
				m.runner.reset();
				const { logits } = await m.runner.forward(ids, async (name, residual, rows) => {
					if (name === hook) encoded = await m.sae!.session.encode(residual, rows, k);
				});
				logits.dispose();
				const e = encoded!;
				return ids.map((id, t) => ({
					id,
					piece: m.tokenizer.pieceText(id),
					features: Array.from({ length: e.k }, (_, j) => ({ id: e.ids[t * e.k + j], value: e.values[t * e.k + j] })).filter((x) => x.value > 0)
				}));
			} finally {
				this.busy = false;
			}
		});
	}

	/** A feature's page: its activations over the last analysed text, logit effects, nearest features. */
	async feature(f: number, k = 10): Promise<Result<FeatureDetails>> {
		return attempt(async () => {
			const m = this.requireModel();
			const s = m.sae?.session;
			if (!s) throw new LoupeError('model-failed', 'No SAE is loaded.', 'Load an SAE for this model first.');
			if (!(f >= 0 && f < s.sae.cfg.dSae)) throw new LoupeError('model-failed', `There is no feature ${f}: this SAE has features 0 to ${s.sae.cfg.dSae - 1}.`, 'Enter a feature number in that range.');
			const piece = (x: RankedItem) => ({ ...x, piece: m.tokenizer.pieceText(x.id) });
			const logits = await s.logitEffects(f, k);
			return {
				feature: f,
				activations: await s.activations(f),
				positiveLogits: logits.positive.map(piece),
				negativeLogits: logits.negative.map(piece),
				nearest: await s.nearest(f, k)
			};
		});
	}

	async generate(prompt: string, settings: SamplingSettings, onToken: (e: TokenEvent) => void): Promise<Result<GenerateResult>> {
		return attempt(async () => {
			this.assertDevice();
			const m = this.loaded;
			if (!m) throw new LoupeError('model-failed', 'No model is loaded.', 'Pick a model and wait for it to load.');
			if (this.busy) throw new LoupeError('model-failed', 'The model is already writing.', 'Press Stop first.');
			this.busy = true;
			this.stopRequested = false;
			try {
				return await generate(m.runner, m.tokenizer, m.processor, prompt, settings, onToken, () => this.stopRequested);
			} catch (e) {
				this.assertDevice(); // a lost device explains most failures mid-run: say that instead
				throw e;
			} finally {
				this.busy = false;
			}
		});
	}

	stop() {
		this.stopRequested = true;
	}

	/** Token ids and their pieces, for showing how a prompt is split. */
	tokenize(text: string): { id: number; piece: string }[] {
		const t = this.loaded?.tokenizer;
		return t ? t.encode(text).map((id) => ({ id, piece: t.pieceText(id) })) : [];
	}

	async listCache(): Promise<CachedFile[]> {
		return listCachedFiles();
	}

	async deleteCached(url: string): Promise<boolean> {
		return deleteCachedFile(url);
	}

	async storageEstimate(): Promise<{ usage: number; quota: number } | null> {
		const e = await navigator.storage?.estimate?.();
		return e ? { usage: e.usage ?? 0, quota: e.quota ?? 0 } : null;
	}

}

/**
 * The Engine: everything that touches the model, the GPU and storage, running in one dedicated
 * Web Worker (worker.ts exposes it with comlink). Calls return plain data; failures come back as
 * `{ ok: false, error }` with a message for people (see errors.ts).
 */
import * as ort from 'onnxruntime-web/webgpu';
import { LoupeError, toErrorInfo, type ErrorInfo } from './errors';
import { readLlama2cCheckpoint } from './model/llama2c/checkpoint';
import { Llama2cTokenizer } from './model/llama2c/tokenizer';
import { buildLlamaOnnx } from './model/llama2c/to-onnx';
import { SegmentRunner, type Backend } from './model/runner';
import { generate, lastRowLogits, type GenerateResult, type TokenEvent } from './model/generate';
import { allHookNames, boundaryName, hookBoundary } from './model/hooks';
import { findModel, type OnnxModel } from './model/catalogue';
import type { DecoderShape } from './model/segments';
import { choosePrecision, hubTreeUrl, openExport, parseHubTree, type Precision } from './model/hf/exported-model';
import { findUnembedding } from './model/onnx/unembedding';
import type { HookManifest } from './model/onnx/hook-manifest';
import type { TextTokenizer } from './model/generate';
import type { SegmentedModel } from './model/segments';
import { LogitsProcessor, logitsProcessReference } from './gpu/logits-process';
import { topK } from './sae/sae';
import type { SamplingSettings } from './sample/sampler';
import { readSaeFiles, type SaeFile } from './sae/load';
import { checkSaeFitsModel } from './sae/validate';
import { SaeSession } from './sae/session';
import { describePreprocessing, type SaeConfig } from './sae/config';
import type { RankedItem } from './sae/features';
import type { ReconMetrics } from './sae/reconstruction';
import { benchSaeEncode, type BenchLine } from './bench/sae-encode';
import { benchSegmentation } from './bench/segmentation';
import { benchSaeTraining } from './bench/sae-train';
import { shapeOf, summarizeRun, toSaeLens, type TrainConfig, type TrainProgress, type TrainRunSummary } from './train/training-run';
import { trainSae } from './train/train-loop';
import { noSteering, type SteerFeature, type SteeringSetup } from './steer/spec';
import { ResidualMean, contrast, newVectorId, vectorNorm, type SteeringVector } from './steer/vectors';
import { SteerKernel } from './gpu/steer';
import { parsePresetFile, presetFileText, presetVectorIds } from './steer/preset-file';
import { createStorage, readBuffer } from './gpu/buffers';
import type { ResidualHook } from './model/runner';
import { HIST_BINS, TOP_EXAMPLES, histBinRange } from './sae/corpus-stats';
import { parseNeuronpediaExplanations } from './sae/labels';
import {
	deletePreset, deleteTrainRun, deleteVector, getLabel, getTrainRun, getVector, labelsFor, listTrainRuns, saveTrainRun, latestCorpusRun, presetsFor, putLabels, saveCorpusRun, savePreset, saveVector, vectorsFor,
	type CorpusRun, type FeatureLabel, type SteeringPreset
} from './store/db';
import { defaultSampling } from './sample/sampler';
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
	/** The adapter can run fp16 shaders (fp16 and q4f16 model variants need it). */
	shaderF16: boolean;
}

export interface ModelInfo {
	id: string;
	name: string;
	source: 'hub' | 'files';
	backend: Backend;
	/** 'llama2c': a checkpoint Loupe turns into ONNX; 'onnx': an exported graph with hooks put in by surgery. */
	format: 'llama2c' | 'onnx';
	architecture: string;
	/** The residual stream's element type: SAEs and steering need 'float32'. */
	dtype: string;
	shape: DecoderShape;
	parameters: number;
	/** For exported models: the variant downloaded and why. */
	precision?: Precision;
	/** For exported models: where each hook point is in the graph, and the segments of the current cut. */
	manifest?: HookManifest;
	/** The tokenizer has a chat template (instruction-tuned models): chat mode is offered. */
	chatTemplate: boolean;
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

export interface VectorSummary {
	id: string;
	name: string;
	hook: string;
	norm: number;
	positive: string[];
	negative: string[];
}

function summarizeVector(v: SteeringVector): VectorSummary {
	return { id: v.id, name: v.name, hook: v.hook, norm: vectorNorm(v.values), positive: v.positive, negative: v.negative };
}

export type { TrainRunSummary };

export type EngineEvent = { type: 'device-lost'; error: ErrorInfo };

/** What the engine needs of a model, whichever way it was opened. */
interface ModelSource {
	format: ModelInfo['format'];
	architecture: string;
	shape: DecoderShape;
	/** The residual stream's element type ('float32', 'float16'). */
	dtype: string;
	parameters: number;
	tokenizer: TextTokenizer & { pieceText(id: number): string; applyChatTemplate?: (prompt: string) => string; readonly hasChatTemplate?: boolean };
	/** The model cut at these boundaries, as ONNX segments. */
	segment(cuts: number[]): SegmentedModel;
	/** W_U as [vocab, d_model] and the final norm's scale, for feature logits; null where not found. */
	unembedding: { classifier: Float32Array; normWeight: Float32Array | null } | null;
	manifest?: (model: SegmentedModel) => HookManifest;
	precision?: Precision;
}

interface Loaded {
	info: ModelInfo;
	source: ModelSource;
	runner: SegmentRunner;
	tokenizer: ModelSource['tokenizer'];
	processor: LogitsProcessor | null;
	sae: { session: SaeSession; info: SaeInfo; boundary: number; key: string; run: CorpusRun | null } | null;
	lastPrompt: number[];
}

export interface SaeInfo {
	name: string;
	cfg: SaeConfig;
	preprocessing: string[];
	source: string; // where it came from: a hub folder or file names
	onGpu: boolean;
	corpus: CorpusSummary | null; // statistics from an earlier corpus run, restored from IndexedDB
}

export interface CorpusSpec {
	name: string;
	text?: string; // a text file's contents or pasted text
	stories?: number; // or: let the model write this many stories…
	storyTokens?: number; // …of this many tokens
	seed?: number;
}

export interface CorpusSummary {
	corpus: string;
	contexts: number;
	tokens: number;
	createdAt: string;
}

export interface CorpusProgress {
	phase: 'writing' | 'encoding';
	done: number;
	total: number;
	tokens: number;
}

export interface TopExample {
	pieces: string[];
	activations: number[];
	position: number;
	value: number;
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
	label: FeatureLabel | null;
	/** From the corpus run, when there is one. */
	corpus: {
		name: string;
		density: number; // fraction of tokens where it fires
		maxAct: number;
		histogram: { from: number; to: number; count: number }[];
		examples: TopExample[];
	} | null;
}

function summarize(run: CorpusRun): CorpusSummary {
	return { corpus: run.corpus, contexts: run.contexts.length, tokens: run.stats.tokens, createdAt: run.createdAt };
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
	private lockTail: Promise<void> = Promise.resolve();
	private onEvent: (e: EngineEvent) => void = () => {};
	private steering: SteeringSetup = noSteering;
	private vectorCache = new Map<string, SteeringVector>();
	private chat = false;
	private trainFlags = { pause: false, stop: false };
	/** The kernel that adds steering vectors (no SAE needed), on ORT's current device. */
	private vectorKernel: { device: GPUDevice; kernel: SteerKernel; dummy: GPUBuffer } | null = null;

	/**
	 * Model operations (generating, analysing, corpus runs, loading) share one KV cache and one set
	 * of sessions, so they run one at a time, each waiting for the one before it.
	 */
	private async acquire(): Promise<() => void> {
		let release!: () => void;
		const done = new Promise<void>((r) => (release = r));
		const before = this.lockTail;
		this.lockTail = before.then(() => done);
		await before;
		return release;
	}

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
		let shaderF16 = false;
		if (!('gpu' in navigator) || !navigator.gpu) {
			fallbackReason = 'This browser has no WebGPU (navigator.gpu is missing), so the model runs on the CPU (WebAssembly), more slowly. Chrome, Edge and recent Safari and Firefox have WebGPU.';
		} else {
			const a = await navigator.gpu.requestAdapter().catch(() => null);
			if (!a) fallbackReason = 'WebGPU is present but no GPU adapter is available (it may be disabled or blocklisted), so the model runs on the CPU (WebAssembly), more slowly.';
			else {
				backend = 'webgpu';
				shaderF16 = a.features.has('shader-f16');
				const i = a.info;
				adapter = [i.description || i.architecture || i.device, i.vendor && `(${i.vendor})`].filter(Boolean).join(' ') || 'WebGPU adapter';
			}
		}
		this.status = { backend, adapter, fallbackReason, crossOriginIsolated: self.crossOriginIsolated, threads, shaderF16 };
		return this.status;
	}

	/** Loads a catalogue model from a hub (or its mirror), from the cache when it is there. */
	async loadFromHub(req: LoadFromHub, onProgress: (p: DownloadProgress) => void): Promise<Result<ModelInfo>> {
		return attempt(async () => {
			const entry = findModel(req.model);
			if (!entry) throw new LoupeError('not-found', `There is no model "${req.model}" in Loupe's catalogue.`, 'Pick a model from the list, or open your own files.');
			if (entry.format === 'onnx') return this.loadExportFromHub(entry, req, onProgress);
			const t0 = performance.now();
			const url = (path: string) => hubFileUrl(req.hub, entry.repo, entry.revision, path);
			const urls = [url(entry.files.checkpoint), url(entry.files.tokenizer)];
			const [ckpt, tok] = await Promise.all(urls.map((u) => fetchModelFile(u, onProgress)));
			const release = await this.acquire();
			try {
				const source = llama2cSource(ckpt, tok, entry.files.checkpoint.split('/').pop()!, entry.files.tokenizer.split('/').pop()!);
				return await this.start(source, entry.id, entry.name, 'hub', req.hooks ?? [], t0, [ckpt, tok]);
			} catch (e) {
				// A file that does not parse must not be served from the cache next time.
				if (e instanceof LoupeError && ['truncated', 'not-a-checkpoint', 'unsupported-checkpoint', 'not-a-tokenizer', 'tokenizer-mismatch'].includes(e.code))
					await Promise.all(urls.map(deleteCachedFile));
				throw e;
			} finally {
				release();
			}
		});
	}

	/** An exported ONNX decoder: the Hub's file list, the variant for this adapter, surgery. */
	private async loadExportFromHub(entry: OnnxModel, req: LoadFromHub, onProgress: (p: DownloadProgress) => void): Promise<ModelInfo> {
		const t0 = performance.now();
		const status = await this.init();
		const url = (path: string) => hubFileUrl(req.hub, entry.repo, entry.revision, path);
		const tree = await fetchModelFile(hubTreeUrl(req.hub, entry.repo, entry.revision, entry.onnxFolder), onProgress);
		const files = parseHubTree(JSON.parse(new TextDecoder().decode(tree.buffer)));
		const precision = choosePrecision(entry, files, status.shaderF16);
		const graphUrl = url(`${entry.onnxFolder}/${precision.file}`);
		const json = async (path: string, optional = false) => {
			try {
				return JSON.parse(new TextDecoder().decode((await fetchModelFile(url(path), onProgress)).buffer));
			} catch (e) {
				if (optional && e instanceof LoupeError && e.code === 'not-found') return {};
				throw e;
			}
		};
		const [graph, tokenizerJson, tokenizerConfig, config] = await Promise.all([
			fetchModelFile(graphUrl, onProgress), json('tokenizer.json'), json('tokenizer_config.json', true), json('config.json', true)
		]);
		const fetched: FetchedFile[] = [graph];
		const opened = await openExport(graph.buffer, precision.file, async (path) => {
			const f = await fetchModelFile(url(`${entry.onnxFolder}/${path}`), onProgress);
			fetched.push(f);
			return f.buffer;
		}, tokenizerJson, tokenizerConfig, config).catch(async (e) => {
			if (e instanceof LoupeError && e.code === 'not-a-checkpoint') await deleteCachedFile(graphUrl);
			throw e;
		});
		const release = await this.acquire();
		try {
			return await this.start(exportSource(opened, { ...precision }), entry.id, entry.name, 'hub', req.hooks ?? [], t0, fetched);
		} finally {
			release();
		}
	}

	/** Loads a model the user picked from disk: llama2.c files, or an .onnx with its tokenizer files. */
	async loadFromFiles(picked: File[], hooks: string[] = []): Promise<Result<ModelInfo>> {
		return attempt(async () => {
			const t0 = performance.now();
			const byName = new Map(picked.map((f) => [f.name, f]));
			const onnxFile = picked.find((f) => f.name.endsWith('.onnx'));
			let source: ModelSource;
			let id: string;
			if (onnxFile) {
				const text = async (name: string, required: boolean) => {
					const f = byName.get(name);
					if (!f && required) throw new LoupeError('not-found', `To open ${onnxFile.name}, also choose its ${name}.`, 'Choose the .onnx file, its weights file (if any), tokenizer.json, tokenizer_config.json and config.json together.');
					return f ? JSON.parse(await f.text()) : {};
				};
				const opened = await openExport(await onnxFile.arrayBuffer(), onnxFile.name, async (path) => {
					const f = byName.get(path.split('/').pop()!);
					if (!f) throw new LoupeError('not-found', `${onnxFile.name} keeps its weights in "${path}", which was not chosen with it.`, `Choose ${path} together with the .onnx file.`);
					return f.arrayBuffer();
				}, await text('tokenizer.json', true), await text('tokenizer_config.json', false), await text('config.json', false));
				source = exportSource(opened);
				id = `file:${onnxFile.name}`;
			} else {
				if (picked.length !== 2) throw new LoupeError('not-found', `Choose two llama2.c files together (checkpoint and tokenizer), or an .onnx with its tokenizer.json. You gave ${picked.length}.`, 'Pick the files again.');
				const [tokenizer, checkpoint] = [...picked].sort((a, b) => a.size - b.size);
				const read = async (f: File): Promise<FetchedFile> => ({ buffer: await f.arrayBuffer(), fromCache: false });
				source = llama2cSource(await read(checkpoint), await read(tokenizer), checkpoint.name, tokenizer.name);
				id = `file:${checkpoint.name}`;
			}
			const release = await this.acquire();
			try {
				return await this.start(source, id, id.slice(5), 'files', hooks, t0, []);
			} finally {
				release();
			}
		});
	}

	private async start(source: ModelSource, id: string, name: string, from: ModelInfo['source'], hooks: string[], t0: number, files: FetchedFile[]): Promise<ModelInfo> {
		this.assertDevice();
		const status = await this.init();
		const model = source.segment(hooks.map((h) => hookBoundary(h, source.shape.nLayers)));
		// The old model is released only after the new one exists: ORT destroys its GPU device
		// when its last WebGPU session goes.
		const previous = this.loaded; // still usable if this load fails
		let backend = status.backend;
		const warnings: ErrorInfo[] = [];
		if (backend === 'webgpu' && source.dtype === 'float16' && !status.shaderF16) {
			backend = 'wasm';
			warnings.push({ code: 'no-webgpu', message: 'This model is fp16 and this GPU cannot run fp16 shaders (no shader-f16), so it runs on the CPU (WebAssembly), more slowly.', action: 'Pick an fp32 export of the model to run it on the GPU.' });
		}
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
		if (backend === 'webgpu' && runner.logitsOnGpu) {
			const device = await this.gpuDevice();
			processor = await LogitsProcessor.create(device, source.shape.vocabSize);
		}
		const info: ModelInfo = {
			id, name, source: from, backend,
			format: source.format,
			architecture: source.architecture,
			dtype: source.dtype,
			shape: source.shape,
			parameters: source.parameters,
			precision: source.precision,
			manifest: source.manifest?.(model),
			chatTemplate: !!source.tokenizer.hasChatTemplate,
			hooks: allHookNames(source.shape.nLayers),
			cutAt: model.segments.flatMap((s) => (s.residualOut ? [s.residualOut] : [])),
			loadMs: performance.now() - t0,
			fromCache: files.length > 0 && files.every((f) => f.fromCache),
			warnings: [...warnings, ...files.map((f) => f.cacheWarning).filter((w): w is NonNullable<typeof w> => !!w)]
		};
		if (!source.unembedding)
			info.warnings.push({ code: 'model-failed', message: 'Loupe could not find the unembedding matrix in this graph, so feature cards show no logit effects.', action: 'Everything else works.' });
		this.loaded = { info, source, runner, tokenizer: source.tokenizer, processor, sae: null, lastPrompt: [] };
		previous?.processor?.destroy();
		previous?.sae?.session.destroy();
		// Releasing the last WebGPU session makes ORT destroy its device: expected, not a lost GPU.
		if (backend !== 'webgpu') this.device = null;
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

	/** The loaded model and its SAE, or a message saying what to load first. */
	private requireSae(action = 'Load an SAE for this model first.'): { m: Loaded; sae: NonNullable<Loaded['sae']> } {
		const m = this.requireModel();
		if (!m.sae) throw new LoupeError('model-failed', 'No SAE is loaded.', action);
		return { m, sae: m.sae };
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
		const release = await this.acquire(); // it may re-cut the model: not while it is writing
		try {
			return await this.attachSaeNow(files, source, hookName);
		} finally {
			release();
		}
	}

	private async attachSaeNow(files: SaeFile[], source: string, hookName?: string): Promise<SaeInfo> {
		const m = this.requireModel();
		const c = m.source.shape;
		if (m.source.dtype !== 'float32')
			throw new LoupeError('model-failed', `${m.info.name} computes its residual stream in ${m.source.dtype}; Loupe's SAE and steering kernels read fp32.`, 'Open the fp32 export of this model to use SAEs with it.');
		const { cfg, weights } = readSaeFiles(files, { hookName });
		checkSaeFitsModel(cfg, { name: m.info.name, nLayers: c.nLayers, dModel: c.dModel });
		const boundary = hookBoundary(cfg.hookName, c.nLayers);
		// The model must be cut at the SAE's hook so the residual can be read there.
		await this.ensureCuts(m, [boundary]);
		const device = m.runner.backend === 'webgpu' ? await this.gpuDevice() : null;
		const unembed = { normWeight: null, ...(m.source.unembedding ?? { classifier: new Float32Array(c.vocabSize * c.dModel) }) };
		const session = await SaeSession.create(cfg, weights, device, { vocabSize: c.vocabSize, dModel: c.dModel, ...unembed });
		m.sae?.session.destroy();
		const key = `${source}|${cfg.hookName}|${cfg.dSae}`;
		const run = (await latestCorpusRun(m.info.id, key).catch(() => undefined)) ?? null;
		const info: SaeInfo = { name: cfg.name, cfg, preprocessing: describePreprocessing(cfg), source, onGpu: session.onGpu, corpus: run && summarize(run) };
		m.sae = { session, info, boundary, key, run };
		return info;
	}

	/** Runs the prompt and returns each token with its top `k` SAE features, and the reconstruction error. */
	async analyze(prompt: string, k = 8): Promise<Result<{ tokens: AnalyzedToken[]; reconstruction: ReconMetrics }>> {
		return attempt(async () => {
			const { m, sae } = this.requireSae();
			const release = await this.acquire(); // one model operation at a time, in order
			try {
				const ids = m.tokenizer.encode(prompt);
				if (ids.length > m.source.shape.maxSeqLen) throw new LoupeError('model-failed', `The text is ${ids.length} tokens; this model reads at most ${m.source.shape.maxSeqLen}.`, 'Shorten the text.');
				const { encoded: e, reconstruction } = await this.encodeContext(m, ids, k, true);
				m.lastPrompt = ids;
				const stats = sae.run?.stats;
				const tokens = ids.map((id, t) => ({
					id,
					piece: m.tokenizer.pieceText(id),
					features: Array.from({ length: e.k }, (_, j) => {
						const f = e.ids[t * e.k + j];
						return { id: f, value: e.values[t * e.k + j], density: stats ? stats.fires[f] / Math.max(1, stats.tokens) : undefined };
					}).filter((x) => x.value > 0)
				}));
				return { tokens, reconstruction: reconstruction! };
			} finally {
				release();
			}
		});
	}

	/** Runs the model over one context (from BOS) and encodes the residual at the SAE's hook. */
	private async encodeContext(m: Loaded, ids: number[], k: number, measure = false) {
		const hook = boundaryName(m.sae!.boundary, m.source.shape.nLayers);
		let encoded: Awaited<ReturnType<SaeSession['encode']>> | null = null;
		let reconstruction: ReconMetrics | null = null;
		m.runner.reset();
		const { logits } = await m.runner.forward(ids, async (name, residual, rows) => {
			if (name !== hook) return;
			encoded = await m.sae!.session.encode(residual, rows, k);
			if (measure) reconstruction = await m.sae!.session.reconstruction(residual, rows);
		});
		logits.dispose();
		return { encoded: encoded!, reconstruction };
	}

	/**
	 * A corpus run: the model reads the corpus (or writes it first), the SAE encodes every token on
	 * the GPU, and per-feature statistics (density, max, histogram, top contexts) are kept in
	 * IndexedDB for this (model, SAE, corpus).
	 */
	async runCorpus(spec: CorpusSpec, onProgress: (p: CorpusProgress) => void): Promise<Result<CorpusSummary>> {
		return attempt(async () => {
			const { m, sae } = this.requireSae();
			const release = await this.acquire(); // one model operation at a time, in order
			this.stopRequested = false;
			try {
				const contexts = await this.corpusContexts(m, spec, onProgress);
				if (!contexts.length) throw new LoupeError('model-failed', 'The corpus is empty.', 'Paste some text, choose a text file, or let the model write stories.');
				const acc = await sae.session.statsRun();
				let tokens = 0;
				for (const [c, ids] of contexts.entries()) {
					if (this.stopRequested) throw new DOMException('stopped', 'AbortError');
					const { encoded: e } = await this.encodeContext(m, ids, 1);
					acc.add(e.tokens, c);
					tokens += ids.length;
					onProgress({ phase: 'encoding', done: c + 1, total: contexts.length, tokens });
				}
				const run: CorpusRun = { key: `${m.info.id}|${sae.key}|${spec.name}`, model: m.info.id, sae: sae.key, corpus: spec.name, createdAt: new Date().toISOString(), contexts, stats: await acc.finish() };
				await saveCorpusRun(run).catch((e) => {
					throw new LoupeError('storage-full', `The corpus statistics could not be saved (${e instanceof Error ? e.message : e}).`, 'Free space in the Storage panel; the results are shown but will not survive a reload.');
				});
				sae.run = run;
				sae.info.corpus = summarize(run);
				return sae.info.corpus;
			} finally {
				release();
			}
		});
	}

	/**
	 * A corpus as model contexts (BOS first, at most 128 tokens): text split into paragraphs and
	 * windows, or stories the model writes (sampled, seeded).
	 */
	private async corpusContexts(m: Loaded, spec: CorpusSpec, onProgress: (p: CorpusProgress) => void): Promise<number[][]> {
		const window = Math.min(128, m.source.shape.maxSeqLen);
		const contexts: number[][] = [];
		if (spec.text !== undefined) {
			for (const para of spec.text.split(/\n+/).map((p) => p.trim()).filter(Boolean)) {
				const ids = m.tokenizer.encode(para);
				for (let i = 1; i < ids.length; i += window - 1) contexts.push([ids[0], ...ids.slice(i, i + window - 1)]);
			}
		} else {
			const n = spec.stories ?? 16;
			for (let i = 0; i < n; i++) {
				if (this.stopRequested) throw new DOMException('stopped', 'AbortError');
				const r = await generate(m.runner, m.tokenizer, m.processor, '', { ...defaultSampling, temperature: 1, topP: 0.95, maxTokens: Math.min(spec.storyTokens ?? 64, window - 1), seed: (spec.seed ?? 1) + i }, () => {}, () => this.stopRequested);
				contexts.push([m.tokenizer.encode('')[0], ...r.tokens]);
				onProgress({ phase: 'writing', done: i + 1, total: n, tokens: contexts.reduce((a, c) => a + c.length, 0) });
			}
		}
		return contexts;
	}

	/** Imports a Neuronpedia explanations export (JSON or JSONL) as labels for the loaded SAE. */
	async importLabels(text: string, fileName: string): Promise<Result<{ imported: number; skipped: number }>> {
		return attempt(async () => {
			const { sae } = this.requireSae('Load the SAE these labels belong to first.');
			const { labels, skipped } = parseNeuronpediaExplanations(text, fileName);
			const inRange = labels.filter((l) => l.feature < sae.info.cfg.dSae);
			await putLabels(inRange.map((l) => ({ sae: sae.key, feature: l.feature, description: l.description, source: 'neuronpedia' as const })));
			return { imported: inRange.length, skipped: skipped + labels.length - inRange.length };
		});
	}

	async setLabel(feature: number, description: string): Promise<Result<FeatureLabel>> {
		return attempt(async () => {
			const { sae } = this.requireSae();
			const label: FeatureLabel = { sae: sae.key, feature, description: description.trim(), source: 'user' };
			await putLabels([label]);
			return label;
		});
	}

	/** Features whose label contains `query` (case-insensitive), at most 50. */
	async searchLabels(query: string): Promise<Result<FeatureLabel[]>> {
		return attempt(async () => {
			const sae = this.requireModel().sae;
			if (!sae) return [];
			const q = query.trim().toLowerCase();
			return (await labelsFor(sae.key)).filter((l) => l.description.toLowerCase().includes(q)).slice(0, 50);
		});
	}

	/** The largest activation each feature reached in the corpus run (for strengths in those units). */
	async featureMaxActs(features: number[]): Promise<(number | null)[]> {
		const st = this.loaded?.sae?.run?.stats;
		return features.map((f) => (st && f >= 0 && f < st.dSae ? st.maxAct[f] : null));
	}

	/** A feature's page: its activations over the last analysed text, logit effects, nearest features. */
	async feature(f: number, k = 10): Promise<Result<FeatureDetails>> {
		return attempt(async () => {
			const { m, sae } = this.requireSae();
			const s = sae.session;
			if (!(f >= 0 && f < s.sae.cfg.dSae)) throw new LoupeError('model-failed', `There is no feature ${f}: this SAE has features 0 to ${s.sae.cfg.dSae - 1}.`, 'Enter a feature number in that range.');
			const release = await this.acquire(); // one model operation at a time, in order
			try {
				const piece = (x: RankedItem) => ({ ...x, piece: m.tokenizer.pieceText(x.id) });
				const logits = await s.logitEffects(f, k);
				const run = m.sae!.run;
				let corpus: FeatureDetails['corpus'] = null;
				if (run) {
					const st = run.stats;
					const examples: TopExample[] = [];
					for (let j = 0; j < TOP_EXAMPLES; j++) {
						const value = st.topVal[f * TOP_EXAMPLES + j];
						if (!(value > 0)) break;
						const ids = run.contexts[st.topRef[2 * (f * TOP_EXAMPLES + j)]];
						await this.encodeContext(m, ids, 1);
						examples.push({ pieces: ids.map((id) => m.tokenizer.pieceText(id)), activations: await s.activations(f), position: st.topRef[2 * (f * TOP_EXAMPLES + j) + 1], value });
					}
					corpus = {
						name: run.corpus,
						density: st.fires[f] / Math.max(1, st.tokens),
						maxAct: st.maxAct[f],
						histogram: Array.from({ length: HIST_BINS }, (_, b) => {
							const [from, to] = histBinRange(b);
							return { from, to, count: st.hist[f * HIST_BINS + b] };
						}),
						examples
					};
				}
				// The prompt's activations last: the examples above re-used the encoder's buffers.
				if (m.lastPrompt.length) await this.encodeContext(m, m.lastPrompt, 1);
				return {
					feature: f,
					activations: m.lastPrompt.length ? await s.activations(f) : [],
					positiveLogits: logits.positive.map(piece),
					negativeLogits: logits.negative.map(piece),
					nearest: await s.nearest(f, k),
					label: (await getLabel(m.sae!.key, f).catch(() => undefined)) ?? null,
					corpus
				};
			} finally {
				release();
			}
		});
	}

	async generate(prompt: string, settings: SamplingSettings, onToken: (e: TokenEvent) => void): Promise<Result<GenerateResult>> {
		return attempt(async () => {
			this.assertDevice();
			const m = this.loaded;
			if (!m) throw new LoupeError('model-failed', 'No model is loaded.', 'Pick a model and wait for it to load.');
			const release = await this.acquire(); // one model operation at a time, in order
			this.stopRequested = false;
			try {
				return await generate(m.runner, m.tokenizer, m.processor, this.promptText(m, prompt), settings, onToken, () => this.stopRequested);
			} catch (e) {
				this.assertDevice(); // a lost device explains most failures mid-run: say that instead
				throw e;
			} finally {
				release();
			}
		});
	}

	stop() {
		this.stopRequested = true;
	}

	/** The loaded model's info as it is now (the cut changes when an SAE or a steering vector needs a hook). */
	modelInfo(): ModelInfo | null {
		return this.loaded?.info ?? null;
	}

	/** Chat mode: prompts go through the model's chat template (instruction-tuned models). */
	setChat(on: boolean) {
		this.chat = on;
	}

	/** The text the model reads for a prompt: as typed, or as the user's turn of a chat. */
	private promptText(m: Loaded, prompt: string): string {
		return this.chat && m.tokenizer.applyChatTemplate ? m.tokenizer.applyChatTemplate(prompt) : prompt;
	}

	/** The steering setup; a change during generation applies from the next token on. */
	async setSteering(setup: SteeringSetup) {
		this.steering = { steerSpecial: setup.steerSpecial, features: setup.features.map((f) => ({ ...f })) };
		// Saved vectors the setup names are read from IndexedDB once, then kept.
		for (const f of this.steering.features)
			if (f.vector && !this.vectorCache.has(f.vector)) {
				const v = await getVector(f.vector).catch(() => undefined);
				if (v) this.vectorCache.set(v.id, v);
			}
	}

	/** Where the current setup steers: SAE features at the SAE's hook, each vector at its own. */
	private steeringPlan(m: Loaded): Map<number, { features: SteerFeature[]; vectors: { v: SteeringVector; spec: SteerFeature }[] }> {
		const plan = new Map<number, { features: SteerFeature[]; vectors: { v: SteeringVector; spec: SteerFeature }[] }>();
		const at = (b: number) => plan.get(b) ?? plan.set(b, { features: [], vectors: [] }).get(b)!;
		const sae = m.sae;
		for (const f of this.steering.features) {
			if (!Number.isFinite(f.value)) continue;
			if (f.vector) {
				const v = this.vectorCache.get(f.vector);
				if (v && v.model === m.info.id && v.values.length === m.source.shape.dModel) at(hookBoundary(v.hook, m.source.shape.nLayers)).vectors.push({ v, spec: f });
			} else if (sae && f.feature >= 0 && f.feature < sae.info.cfg.dSae) at(sae.boundary).features.push(f);
		}
		return plan;
	}

	/** Cuts the model at these boundaries too, when it is not cut there yet (keeps the SAE's cut). */
	private async ensureCuts(m: Loaded, boundaries: number[]) {
		const missing = boundaries.filter((b) => !m.runner.model.cuts.includes(b));
		if (!missing.length) return;
		const runner = await SegmentRunner.create(ort, m.source.segment([...m.runner.model.cuts, ...missing]), m.runner.backend);
		await m.runner.dispose();
		m.runner = runner;
		m.info.cutAt = runner.model.segments.flatMap((s) => (s.residualOut ? [s.residualOut] : []));
		m.info.manifest = m.source.manifest?.(runner.model);
	}

	/** The residual hook that applies the current steering setup (read at every step: sliders act live). */
	private async steeringHook(m: Loaded): Promise<ResidualHook | undefined> {
		const planned = this.steeringPlan(m);
		if (!planned.size) return undefined;
		await this.ensureCuts(m, [...planned.keys()]);
		const device = m.runner.backend === 'webgpu' ? await this.gpuDevice() : null;
		if (device && !this.vectorKernel) this.vectorKernel = { device, kernel: await SteerKernel.create(device), dummy: createStorage(device, 16, 'steer.no-acts') };
		const d = m.source.shape.dModel;
		return async (name, residual, rows) => {
			const setup = this.steering;
			const plan = this.steeringPlan(m).get(hookBoundary(name, m.source.shape.nLayers));
			if (!plan) return;
			const skip = m.runner.position === 0 && !setup.steerSpecial ? 0 : -1; // this forward holds BOS
			if (plan.features.length) await m.sae!.session.steer(residual, rows, plan.features, skip);
			if (!plan.vectors.length) return;
			const dirs = () => {
				const out = new Float32Array(plan.vectors.length * d);
				plan.vectors.forEach(({ v, spec }, j) => {
					const n = spec.normalize ? vectorNorm(v.values) || 1 : 1;
					for (let i = 0; i < d; i++) out[j * d + i] = v.values[i] / n;
				});
				return out;
			};
			const rowsSpec = plan.vectors.map(({ spec }) => ({ mode: 'add' as const, feature: 0, value: spec.value }));
			const vk = this.vectorKernel;
			if (residual.location === 'gpu-buffer' && vk && vk.device === device) {
				const key = JSON.stringify(plan.vectors.map(({ v, spec }) => [v.id, spec.normalize]));
				vk.kernel.apply(residual.gpuBuffer as GPUBuffer, rows, d, dirs, rowsSpec, key, vk.dummy, 1, skip);
			} else {
				// The wasm path: ORT's CPU tensor, edited in place (the same sum the kernel computes).
				const x = residual.data as Float32Array;
				const dir = dirs();
				for (let t = 0; t < rows; t++) {
					if (t === skip) continue;
					rowsSpec.forEach((r, j) => {
						for (let i = 0; i < d; i++) x[t * d + i] += r.value * dir[j * d + i];
					});
				}
			}
		};
	}

	/**
	 * The default and the steered completion of the same prompt with the same settings and seed,
	 * one after the other; `onToken` hears which stream each token belongs to.
	 */
	async generateSideBySide(prompt: string, settings: SamplingSettings, onToken: (stream: 'default' | 'steered', e: TokenEvent) => void): Promise<Result<{ default: GenerateResult; steered: GenerateResult }>> {
		return attempt(async () => {
			const m = this.requireModel();
			if (!m.sae && !this.steering.features.some((f) => f.vector))
				throw new LoupeError('model-failed', 'Nothing to steer with yet.', 'Load an SAE and choose features, or make a contrast vector, first.');
			const release = await this.acquire(); // one model operation at a time, in order
			this.stopRequested = false;
			try {
				const hook = await this.steeringHook(m);
				const base = await generate(m.runner, m.tokenizer, m.processor, this.promptText(m, prompt), settings, (e) => onToken('default', e), () => this.stopRequested);
				const steered = await generate(m.runner, m.tokenizer, m.processor, this.promptText(m, prompt), settings, (e) => onToken('steered', e), () => this.stopRequested, hook);
				return { default: base, steered };
			} finally {
				release();
			}
		});
	}

	/**
	 * A contrast vector: the mean residual at `hook` over the positive prompts minus the mean over
	 * the negative ones (BOS left out), saved in IndexedDB for this model.
	 */
	async makeContrastVector(req: { name: string; hook: string; positive: string[]; negative: string[] }): Promise<Result<VectorSummary>> {
		return attempt(async () => {
			const m = this.requireModel();
			const positive = req.positive.map((p) => p.trim()).filter(Boolean);
			const negative = req.negative.map((p) => p.trim()).filter(Boolean);
			if (!positive.length || !negative.length)
				throw new LoupeError('model-failed', 'A contrast vector needs at least one prompt on each side.', 'Write one prompt per line in both boxes, e.g. "Love" and "Hate".');
			if (m.source.dtype !== 'float32')
				throw new LoupeError('model-failed', `${m.info.name} computes its residual in ${m.source.dtype}; steering reads fp32.`, 'Open the fp32 export of this model.');
			const boundary = hookBoundary(req.hook, m.source.shape.nLayers);
			const release = await this.acquire();
			try {
				await this.ensureCuts(m, [boundary]);
				const d = m.source.shape.dModel;
				const hookName = boundaryName(boundary, m.source.shape.nLayers);
				const meanOf = async (prompts: string[]) => {
					const acc = new ResidualMean(d);
					for (const p of prompts) {
						m.runner.reset();
						const { logits } = await m.runner.forward(m.tokenizer.encode(p), async (name, residual, rows) => {
							if (name !== hookName) return;
							const data = residual.location === 'gpu-buffer'
								? new Float32Array(await readBuffer(await this.gpuDevice(), residual.gpuBuffer as GPUBuffer, rows * d * 4))
								: (residual.data as Float32Array);
							acc.add(data, rows, 1);
						});
						logits.dispose();
					}
					return acc.mean();
				};
				const values = contrast(await meanOf(positive), await meanOf(negative));
				const v: SteeringVector = { id: newVectorId(), name: req.name.trim() || `${positive[0]} − ${negative[0]}`, model: m.info.id, hook: req.hook, values, positive, negative, createdAt: new Date().toISOString() };
				await saveVector(v);
				this.vectorCache.set(v.id, v);
				return summarizeVector(v);
			} finally {
				release();
			}
		});
	}

	async listVectors(): Promise<VectorSummary[]> {
		const m = this.loaded;
		if (!m) return [];
		const vs = await vectorsFor(m.info.id).catch(() => []);
		for (const v of vs) this.vectorCache.set(v.id, v);
		return vs.sort((a, b) => a.createdAt.localeCompare(b.createdAt)).map(summarizeVector);
	}

	async deleteVector(id: string): Promise<void> {
		await deleteVector(id);
		this.vectorCache.delete(id);
	}

	/** Presets: a named `steer=` setup per model, kept in IndexedDB. */
	async savePreset(name: string, steer: string): Promise<Result<SteeringPreset[]>> {
		return attempt(async () => {
			const m = this.requireModel();
			if (!name.trim()) throw new LoupeError('model-failed', 'A preset needs a name.', 'Type a name, then save.');
			await savePreset({ model: m.info.id, name: name.trim(), steer, sae: m.sae?.info.source ?? null, createdAt: new Date().toISOString() });
			return presetsFor(m.info.id);
		});
	}

	async listPresets(): Promise<SteeringPreset[]> {
		return this.loaded ? presetsFor(this.loaded.info.id).catch(() => []) : [];
	}

	async deletePreset(name: string): Promise<SteeringPreset[]> {
		if (!this.loaded) return [];
		await deletePreset(this.loaded.info.id, name);
		return presetsFor(this.loaded.info.id);
	}

	/** A preset as a JSON file's text, with the steering vectors it uses (they live only here otherwise). */
	async exportPreset(name: string): Promise<Result<string>> {
		return attempt(async () => {
			const m = this.requireModel();
			const p = (await presetsFor(m.info.id)).find((x) => x.name === name);
			if (!p) throw new LoupeError('not-found', `There is no preset "${name}".`, 'Pick one from the list.');
			const vectors = (await Promise.all(presetVectorIds(p).map((id) => getVector(id)))).filter((v): v is SteeringVector => !!v);
			return presetFileText(p, vectors);
		});
	}

	/** Reads a preset file written by exportPreset, and keeps it with its vectors. */
	async importPreset(text: string): Promise<Result<SteeringPreset>> {
		return attempt(async () => {
			const m = this.requireModel();
			const { preset, vectors } = parsePresetFile(text, m.info.id);
			for (const v of vectors) {
				await saveVector(v);
				this.vectorCache.set(v.id, v);
			}
			await savePreset(preset);
			return preset;
		});
	}

	/** The 10 most likely next tokens after the prompt, without and with the current steering. */
	async nextTokenTable(prompt: string, k = 10): Promise<Result<{ default: (RankedItem & { piece: string })[]; steered: (RankedItem & { piece: string })[] }>> {
		return attempt(async () => {
			const m = this.requireModel();
			const release = await this.acquire(); // one model operation at a time, in order
			try {
				const ids = m.tokenizer.encode(prompt);
				const V = m.source.shape.vocabSize;
				const table = async (hook?: ResidualHook) => {
					m.runner.reset();
					const { logits, rows } = await m.runner.forward(ids, hook);
					const p = { temperature: 1, freqPenalty: 0 };
					const processed = m.processor && logits.location === 'gpu-buffer'
						? await m.processor.run(logits.gpuBuffer as GPUBuffer, rows, rows - 1, new Uint32Array(V), p)
						: logitsProcessReference(lastRowLogits(logits, rows, V), new Uint32Array(V), p);
					logits.dispose();
					return topK(processed.probs, k).map(([id, value]) => ({ id, value, piece: m.tokenizer.pieceText(id) }));
				};
				const hook = await this.steeringHook(m);
				return { default: await table(), steered: await table(hook) };
			} finally {
				release();
			}
		});
	}

	/** Kernel benchmarks on this device (the /bench page and `npm run bench`). */
	async bench(small: boolean): Promise<Result<BenchLine[]>> {
		return attempt(async () => {
			if ((await this.init()).backend !== 'webgpu') throw new LoupeError('no-webgpu', 'The kernel benchmarks need WebGPU, which this browser does not offer.', 'Open this page in a browser with WebGPU.');
			const shapes = small
				? [{ tokens: 1, dIn: 64, dSae: 512 }, { tokens: 128, dIn: 64, dSae: 512 }]
				: [{ tokens: 1, dIn: 768, dSae: 24576 }, { tokens: 128, dIn: 768, dSae: 24576 }];
			return benchSaeEncode(ort, shapes, small ? 9 : 5);
		});
	}

	/** Training tokens/s: the WGSL trainer against the same SAE in TensorFlow.js (WebGPU), same adapter. */
	async benchTraining(small: boolean): Promise<Result<BenchLine[]>> {
		return attempt(async () => {
			if ((await this.init()).backend !== 'webgpu') throw new LoupeError('no-webgpu', 'The training benchmark needs WebGPU, which this browser does not offer.', 'Open this page in a browser with WebGPU.');
			const shapes = small ? [{ d: 64, n: 512, batch: 256, k: 16 }] : [{ d: 64, n: 512, batch: 256, k: 16 }, { d: 128, n: 2048, batch: 256, k: 32 }];
			return benchSaeTraining(shapes, small ? 20 : 30, small ? 3 : 5);
		});
	}

	/** Tokens/s of the loaded model cut at 1 and 3 hooks over uncut (the /bench page, `npm run bench`). */
	async benchSegmentation(): Promise<Result<BenchLine[]>> {
		return attempt(async () => {
			const m = this.requireModel();
			const release = await this.acquire();
			try {
				const { nLayers, dModel } = m.source.shape;
				return await benchSegmentation(ort, m.source.segment, nLayers, m.runner.backend, `${m.info.name} (${nLayers} layers, d_model ${dModel})`);
			} finally {
				release();
			}
		});
	}

	/**
	 * Trains an SAE on the loaded model's activations at `cfg.hook` (or resumes run `resumeId` from
	 * its last checkpoint). Resolves when it finishes, is paused or is stopped; `onProgress` hears
	 * the phases and, in small batches, the metrics.
	 */
	async train(cfg: TrainConfig, resumeId: string | null, onProgress: (p: TrainProgress) => void): Promise<Result<TrainRunSummary>> {
		return attempt(async () => {
			const m = this.requireModel();
			if (m.runner.backend !== 'webgpu')
				throw new LoupeError('no-webgpu', 'Training runs on the GPU, and this browser has no WebGPU (or the model runs on the CPU).', 'Open Loupe in a browser with WebGPU to train SAEs.');
			if (m.source.dtype !== 'float32') throw new LoupeError('model-failed', `${m.info.name} computes its residual in ${m.source.dtype}; the trainer reads fp32.`, 'Open the fp32 export of this model.');
			let cp = resumeId ? await getTrainRun(resumeId) : undefined;
			if (resumeId && !cp) throw new LoupeError('not-found', 'That training run is not in this browser any more.', 'Start a new run.');
			if (cp && cp.cfg.model !== m.info.id) throw new LoupeError('model-failed', `That run trains on ${cp.cfg.model}, not ${m.info.id}.`, `Load ${cp.cfg.model} to resume it.`);
			const c = cp?.cfg ?? { ...cfg, model: m.info.id };
			const shape = shapeOf(c, m.source.shape.dModel);
			if (!(c.width >= 1 && c.batch >= 1 && c.tokens >= c.batch && (c.arch !== 'topk' || (c.k >= 1 && c.k <= c.width)) && (c.arch !== 'jumprelu' || c.bandwidth > 0)))
				throw new LoupeError('model-failed', 'These settings cannot train: width, batch and tokens must be positive (tokens ≥ batch), k between 1 and the width, and the JumpReLU bandwidth positive.', 'Change the settings.');
			const boundary = hookBoundary(c.hook, m.source.shape.nLayers);
			const release = await this.acquire();
			this.trainFlags = { pause: false, stop: false };
			try {
				await this.ensureCuts(m, [boundary]);
				return await trainSae(
					{
						runner: m.runner,
						device: await this.gpuDevice(),
						hook: boundaryName(boundary, m.source.shape.nLayers),
						dModel: m.source.shape.dModel,
						corpus: (spec, onCorpus) => this.corpusContexts(m, spec, (p) => onCorpus(p.done, p.total)),
						flags: this.trainFlags
					},
					c,
					cp,
					onProgress
				);
			} finally {
				this.trainFlags = { pause: false, stop: false };
				release();
			}
		});
	}

	pauseTraining() {
		this.trainFlags.pause = true;
	}

	stopTraining() {
		this.trainFlags.stop = true;
	}

	async trainingRuns(): Promise<TrainRunSummary[]> {
		return (await listTrainRuns().catch(() => [])).map(summarizeRun);
	}

	async deleteTrainingRun(id: string) {
		await deleteTrainRun(id);
	}

	/** A trained SAE as SAELens files, to download (cfg.json + sae_weights.safetensors). */
	async exportTrainedSae(id: string): Promise<Result<{ cfgJson: string; safetensors: Uint8Array }>> {
		return attempt(async () => {
			const cp = await getTrainRun(id);
			if (!cp) throw new LoupeError('not-found', 'That training run is not in this browser any more.', 'Train it again.');
			return toSaeLens(cp);
		});
	}

	/** Opens a trained SAE in the explorer and the steering panel, through its SAELens files. */
	async openTrainedSae(id: string): Promise<Result<SaeInfo>> {
		return attempt(async () => {
			this.requireModel();
			const cp = await getTrainRun(id);
			if (!cp) throw new LoupeError('not-found', 'That training run is not in this browser any more.', 'Train it again.');
			const { cfgJson, safetensors } = toSaeLens(cp);
			const bytes = safetensors.buffer.slice(safetensors.byteOffset, safetensors.byteOffset + safetensors.byteLength) as ArrayBuffer;
			return this.attachSae([{ name: 'cfg.json', buffer: new TextEncoder().encode(cfgJson).buffer as ArrayBuffer }, { name: 'sae_weights.safetensors', buffer: bytes }], `trained:${id}`);
		});
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

/** A llama2.c checkpoint and tokenizer, turned into ONNX segments by Loupe's own builder. */
function llama2cSource(ckpt: FetchedFile, tok: FetchedFile, ckptName: string, tokName: string): ModelSource {
	const weights = readLlama2cCheckpoint(ckpt.buffer, ckptName);
	const tokenizer = new Llama2cTokenizer(tok.buffer, weights.config.vocabSize, tokName);
	const c = weights.config;
	return {
		format: 'llama2c',
		architecture: 'llama',
		dtype: 'float32',
		shape: { nLayers: c.nLayers, dModel: c.dim, vocabSize: c.vocabSize, maxSeqLen: c.seqLen },
		parameters: weights.tokenEmbedding.length + c.nLayers * (2 * c.dim + 2 * c.dim * c.dim + 2 * c.dim * ((c.dim * c.nKvHeads) / c.nHeads) + 3 * c.dim * c.hiddenDim) + c.dim + (c.sharedClassifier ? 0 : c.vocabSize * c.dim),
		tokenizer,
		segment: (cuts) => buildLlamaOnnx(weights, cuts),
		unembedding: { classifier: weights.classifier, normWeight: weights.rmsFinal }
	};
}

/** An exported decoder after surgery. */
function exportSource(opened: Awaited<ReturnType<typeof openExport>>, precision?: Precision): ModelSource {
	const { trace } = opened.decoder;
	return {
		format: 'onnx',
		architecture: trace.architecture,
		dtype: trace.dtype,
		shape: opened.shape,
		parameters: opened.decoder.graph.parameterCount(),
		tokenizer: opened.tokenizer,
		segment: opened.segment,
		unembedding: findUnembedding(opened.decoder, opened.externalData),
		manifest: opened.manifest,
		precision
	};
}

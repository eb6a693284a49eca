/**
 * The model session: what this browser can run, the loaded model (its source, runner, tokenizer,
 * sampling kernel and the SAE attached to it), the cuts it runs with, the GPU device (Loupe's own,
 * which onnxruntime runs on: gpu-device.ts) and its loss, and the lock. Model operations share one KV cache and one set of sessions, so every capability
 * (generating, SAEs, steering, training, benchmarks) runs its model work through `locked`.
 */
import * as ort from 'onnxruntime-web/webgpu';
import { LoupeError, type ErrorInfo } from '../errors';
import { detectBackend, type EngineStatus } from './backend';
import { loupeGpuDevice } from './gpu-device';
import { SegmentRunner, type Backend } from './runner';
import { generate, type GenerateResult, type TokenEvent } from './generate';
import { boundaryName, type HookName } from './hooks';
import { findModel } from './catalogue';
import type { DecoderShape, SegmentedModel } from './segments';
import type { HookManifest } from './onnx/hook-manifest';
import type { Precision } from './hf/exported-model';
import { LogitsProcessor } from '../gpu/logits-process';
import type { SamplingSettings } from '../sample/sampler';
import { openExportFromHub, openFiles, openLlama2cFromHub, type FetchedInfo, type ModelSource, type OpenedModel } from './open';
import { createRunner, cutNames, offeredHook } from './runner-for-cut';
import type { DownloadProgress } from '../store/model-cache';
import type { AttachedSae } from '../sae/explorer';

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
	/** Distinct parameters (a tied LM head stored twice counts once). */
	parameters: number;
	/** False for a base model exported without its LM head: hooks, SAEs and corpus runs work, writing text does not. */
	lmHead: boolean;
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

export type EngineEvent = { type: 'device-lost'; error: ErrorInfo };

/** The loaded model and what hangs off it. */
export interface Loaded {
	info: ModelInfo;
	source: ModelSource;
	runner: SegmentRunner;
	tokenizer: ModelSource['tokenizer'];
	processor: LogitsProcessor | null;
	sae: AttachedSae | null;
	/** The ids of the text the explorer analysed last (feature cards show activations over it). */
	lastPrompt: number[];
}

export const NO_LM_HEAD = 'This export has no LM head: it cannot write text; hooks, SAEs and corpus runs work.';

export class ModelSession {
	private status: EngineStatus | null = null;
	private loaded: Loaded | null = null;
	private device: GPUDevice | null = null;
	private lost: ErrorInfo | null = null;
	private lockTail: Promise<void> = Promise.resolve();
	private onEvent: (e: EngineEvent) => void = () => {};
	private stopRequested = false;
	private chat = false;

	/** Runs `f` when the model operations before it are done, and before the ones after it. */
	async locked<T>(f: () => Promise<T>): Promise<T> {
		let release!: () => void;
		const done = new Promise<void>((r) => (release = r));
		const before = this.lockTail;
		this.lockTail = before.then(() => done);
		await before;
		try {
			return await f();
		} finally {
			release();
		}
	}

	/** Finds out what this browser can run. Call once; `onEvent` hears about device loss. */
	async init(onEvent?: (e: EngineEvent) => void): Promise<EngineStatus> {
		if (onEvent) this.onEvent = onEvent;
		if (this.status) return this.status;
		this.status = await detectBackend(ort);
		return this.status;
	}

	/** Loads a catalogue model from a hub (or its mirror), from the cache when it is there. */
	async loadFromHub(req: LoadFromHub, onProgress: (p: DownloadProgress) => void): Promise<ModelInfo> {
		const entry = findModel(req.model);
		if (!entry)
			throw new LoupeError(
				'not-found',
				`There is no model "${req.model}" in Loupe's catalogue.`,
				'Pick a model from the list, or open your own files.'
			);
		const t0 = performance.now();
		const opened =
			entry.format === 'onnx'
				? await openExportFromHub(entry, req.hub, (await this.init()).shaderF16, onProgress, (await this.init()).backend)
				: await openLlama2cFromHub(entry, req.hub, onProgress);
		return this.open(opened, entry.id, entry.name, 'hub', req.hooks ?? [], t0);
	}

	/** Loads a model the user picked from disk: llama2.c files, or an .onnx with its tokenizer files. */
	async loadFromFiles(picked: File[], hooks: string[] = []): Promise<ModelInfo> {
		const t0 = performance.now();
		const opened = await openFiles(picked, (await this.init()).backend);
		return this.open(opened, opened.id, opened.id.slice(5), 'files', hooks, t0);
	}

	private open(opened: OpenedModel, id: string, name: string, from: ModelInfo['source'], hooks: string[], t0: number): Promise<ModelInfo> {
		return this.locked(async () => {
			try {
				return await this.start(opened.build(), id, name, from, hooks, t0, opened.files);
			} catch (e) {
				await opened.onFail?.(e);
				throw e;
			}
		});
	}

	private async start(
		source: ModelSource,
		id: string,
		name: string,
		from: ModelInfo['source'],
		hooks: string[],
		t0: number,
		files: FetchedInfo[]
	): Promise<ModelInfo> {
		this.assertDevice();
		const model = source.segment(hooks.map((h) => offeredHook(source, name, h)));
		// The old model's sessions go before the new ones are built: onnxruntime frees a released
		// session's GPU buffers only once no other session lives (gpu-device.ts), and the weights must
		// never be in the worker twice (two copies of a large model do not fit in wasm's 4 GiB heap).
		// Its sampling kernel and SAE stay on the device: if this load fails, it is reopened as it was.
		const previous = this.loaded;
		if (previous) await previous.runner.dispose();
		try {
			return await this.startRunner(source, model, id, name, from, t0, files, previous);
		} catch (e) {
			if (previous) await this.reopen(previous, e);
			throw e;
		}
	}

	private async startRunner(
		source: ModelSource,
		model: SegmentedModel,
		id: string,
		name: string,
		from: ModelInfo['source'],
		t0: number,
		files: FetchedInfo[],
		previous: Loaded | null
	): Promise<ModelInfo> {
		const status = await this.init();
		let backend = status.backend;
		const warnings: ErrorInfo[] = [];
		if (backend === 'webgpu' && source.dtype === 'float16' && !status.shaderF16) {
			backend = 'wasm';
			warnings.push({
				code: 'no-webgpu',
				message:
					'This model is fp16 and this GPU cannot run fp16 shaders (no shader-f16), so it runs on the CPU (WebAssembly), more slowly.',
				action: 'Pick an fp32 export of the model to run it on the GPU.'
			});
		}
		let runner: SegmentRunner;
		try {
			runner = await createRunner(source, model, backend);
		} catch (e) {
			if (backend !== 'webgpu') throw e;
			// The GPU path failed (driver, limits): run on the CPU rather than not at all, and say so.
			status.fallbackReason = `WebGPU could not run this model (${e instanceof Error ? e.message : e}); running on the CPU (WebAssembly) instead.`;
			status.backend = backend = 'wasm';
			runner = await createRunner(source, model, backend);
		}
		let processor: LogitsProcessor | null = null;
		try {
			// Asked for on WebGPU even where no kernel needs it yet: the session hears of its loss from now on.
			const device = backend === 'webgpu' ? await this.gpuDevice() : null;
			if (device && runner.logitsOnGpu && source.lmHead) processor = await LogitsProcessor.create(device, source.shape.vocabSize);
		} catch (e) {
			await runner.dispose(); // the previous model is reopened: never two runners at once
			throw e;
		}
		const info: ModelInfo = {
			id,
			name,
			source: from,
			backend,
			format: source.format,
			architecture: source.architecture,
			dtype: source.dtype,
			shape: source.shape,
			parameters: source.parameters,
			lmHead: source.lmHead,
			precision: source.precision,
			manifest: source.manifest?.(model),
			chatTemplate: !!source.tokenizer.hasChatTemplate,
			hooks: source.hooks,
			cutAt: cutNames(model),
			loadMs: performance.now() - t0,
			fromCache: files.length > 0 && files.every((f) => f.fromCache),
			warnings: [...warnings, ...files.map((f) => f.cacheWarning).filter((w): w is NonNullable<typeof w> => !!w)]
		};
		if (!source.lmHead)
			info.warnings.push({
				code: 'model-failed',
				message: NO_LM_HEAD,
				action: 'Use hook points, SAEs and corpus runs of pasted text; open an export with its LM head to generate.'
			});
		else if (!source.hasUnembedding)
			info.warnings.push({
				code: 'model-failed',
				message: 'Loupe could not find the unembedding matrix in this graph, so feature cards show no logit effects.',
				action: 'Everything else works.'
			});
		this.loaded = { info, source, runner, tokenizer: source.tokenizer, processor, sae: null, lastPrompt: [] };
		previous?.processor?.destroy();
		previous?.sae?.session.destroy();
		return info;
	}

	/**
	 * After a failed load, the model that was loaded before runs again as it was (its runner rebuilt
	 * from its own source and cut); if even that fails it is unloaded, and the error says both.
	 */
	private async reopen(m: Loaded, failure: unknown) {
		try {
			m.runner = await createRunner(m.source, m.runner.model, m.runner.backend);
		} catch {
			this.unload();
			const why = failure instanceof Error ? failure.message : String(failure);
			throw new LoupeError(
				failure instanceof LoupeError ? failure.code : 'model-failed',
				`${why} ${m.info.name}, which was loaded before, could not be reopened either, so no model is loaded now.`,
				failure instanceof LoupeError ? failure.action : 'Load a model again.'
			);
		}
	}

	/** Loupe's GPUDevice, the one onnxruntime runs the model on (kernels share buffers with the model on it). */
	async gpuDevice(): Promise<GPUDevice> {
		const device = await loupeGpuDevice();
		if (device === this.device) return device;
		this.device = device;
		device.lost.then((info) => {
			if (device !== this.device) return; // an earlier device, already reported
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

	assertDevice() {
		if (this.lost) throw new LoupeError(this.lost.code, this.lost.message, this.lost.action);
	}

	/** The loaded model, or null (for calls that answer "nothing" without a model). */
	get current(): Loaded | null {
		return this.loaded;
	}

	requireModel(): Loaded {
		this.assertDevice();
		if (!this.loaded) throw new LoupeError('model-failed', 'No model is loaded.', 'Pick a model and wait for it to load.');
		return this.loaded;
	}

	/** Generation needs the LM head; a hidden-state export refuses in words. */
	requireLmHead(m: Loaded) {
		if (!m.source.lmHead)
			throw new LoupeError(
				'model-failed',
				NO_LM_HEAD,
				'Run a corpus of pasted text or a text file instead, or open an export that ends in logits.'
			);
	}

	/**
	 * A hook of the loaded model by its canonical name (resid_post L is resid_pre L+1); refuses, with
	 * the hooks there are, a name the model lacks or one surgery did not find in this export.
	 */
	canonical(m: Loaded, hook: HookName): HookName {
		return offeredHook(m.source, m.info.name, hook);
	}

	/**
	 * Cuts the model at these hooks too (names, residual or inside a layer; a number is a residual
	 * boundary), when it is not cut there yet (keeps the cuts it has).
	 * The old runner goes before the new one is built: each holds a full copy of the weights (two do
	 * not fit in a 4 GiB wasm heap), and onnxruntime frees a released session's GPU buffers only once
	 * no other session lives. The sampling kernel and the SAE's buffers live on Loupe's device, which
	 * stays (gpu-device.ts). If the new cut cannot be built the old one is rebuilt; if that fails too,
	 * the model is unloaded, and the message says so.
	 */
	async ensureCuts(m: Loaded, hooks: (number | HookName)[]) {
		const n = m.source.shape.nLayers;
		const wanted = hooks.map((h) => this.canonical(m, typeof h === 'number' ? boundaryName(h, n) : h));
		const have = m.runner.model.cutHooks ?? cutNames(m.runner.model);
		const missing = [...new Set(wanted.filter((h) => !have.includes(h)))];
		if (!missing.length) return;
		const old = m.runner;
		const model = m.source.segment([...have, ...missing]);
		await old.dispose();
		try {
			m.runner = await createRunner(m.source, model, old.backend);
		} catch (e) {
			const why = e instanceof Error ? e.message : String(e);
			const hooks = missing.join(', ');
			try {
				m.runner = await createRunner(m.source, old.model, old.backend);
			} catch {
				this.unload();
				throw new LoupeError(
					'model-failed',
					`${m.info.name} could not be cut at ${hooks} (${why}), nor reopened as it was, so it was unloaded.`,
					'Load the model again; a smaller model, or fewer hook points at once, may fit.'
				);
			}
			throw new LoupeError(
				'model-failed',
				`${m.info.name} could not be cut at ${hooks} (${why}); it still runs as before, without that hook.`,
				'Try again with fewer hook points at once, or a smaller model.'
			);
		}
		m.info.cutAt = cutNames(m.runner.model);
		m.info.manifest = m.source.manifest?.(m.runner.model);
	}

	/** Forgets the loaded model and everything on it (a re-cut that could not be rebuilt). */
	private unload() {
		const m = this.loaded;
		this.loaded = null;
		m?.processor?.destroy();
		m?.sae?.session.destroy();
	}

	/** Chat mode: prompts go through the model's chat template (instruction-tuned models). */
	setChat(on: boolean) {
		this.chat = on;
	}

	/** The text the model reads for a prompt: as typed, or as the user's turn of a chat. */
	promptText(m: Loaded, prompt: string): string {
		return this.chat && m.tokenizer.applyChatTemplate ? m.tokenizer.applyChatTemplate(prompt) : prompt;
	}

	/** Asks the running generation or corpus run to stop (it ends with an 'aborted' error or early). */
	stop() {
		this.stopRequested = true;
	}

	/** A new model operation starts: an earlier Stop does not apply to it. */
	clearStop() {
		this.stopRequested = false;
	}

	get stopped(): boolean {
		return this.stopRequested;
	}

	async generate(prompt: string, settings: SamplingSettings, onToken: (e: TokenEvent) => void): Promise<GenerateResult> {
		this.assertDevice();
		const m = this.loaded;
		if (!m) throw new LoupeError('model-failed', 'No model is loaded.', 'Pick a model and wait for it to load.');
		this.requireLmHead(m);
		return this.locked(async () => {
			this.stopRequested = false;
			try {
				return await generate(m.runner, m.tokenizer, m.processor, this.promptText(m, prompt), settings, onToken, () => this.stopRequested);
			} catch (e) {
				this.assertDevice(); // a lost device explains most failures mid-run: say that instead
				throw e;
			}
		});
	}

	/** Token ids and their pieces, for showing how a prompt is split. */
	tokenize(text: string): { id: number; piece: string }[] {
		const t = this.loaded?.tokenizer;
		return t ? t.encode(text).map((id) => ({ id, piece: t.pieceText(id) })) : [];
	}
}

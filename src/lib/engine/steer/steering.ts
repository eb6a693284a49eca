/**
 * Steering: the current setup (SAE features and saved contrast vectors, each at its hook), the
 * residual hook that applies it live, contrast vectors (made, listed, kept in IndexedDB), presets
 * (saved, exported as files with their vectors, imported), and the side-by-side comparison (the
 * default and the steered completion, and the next-token table with and without steering).
 */
import { LoupeError } from '../errors';
import { canonicalHook, type HookName } from '../model/hooks';
import { generate, lastRowLogits, type GenerateResult, type TokenEvent } from '../model/generate';
import type { ResidualHook } from '../model/runner';
import type { Loaded, ModelSession } from '../model/session';
import type { SamplingSettings } from '../sample/sampler';
import { logitsProcessReference } from '../gpu/logits-process';
import { SteerKernel } from '../gpu/steer';
import { createStorage, readBuffer } from '../gpu/buffers';
import { topK } from '../sae/sae';
import type { RankedItem } from '../sae/features';
import { noSteering, type SteerFeature, type SteeringSetup } from './spec';
import { ResidualMean, contrast, newVectorId, vectorNorm, type SteeringVector } from './vectors';
import { parsePresetFile, presetFileText, presetVectorIds } from './preset-file';
import { deletePreset, deleteVector, getVector, presetsFor, savePreset, saveVector, vectorsFor, type SteeringPreset } from '../store/db';

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

/** What to apply at each hook, keyed by the hook's canonical name (the name the runner reports). */
type Plan = Map<HookName, { features: SteerFeature[]; vectors: { v: SteeringVector; spec: SteerFeature }[] }>;
type Ranked = (RankedItem & { piece: string })[];

export class Steering {
	private setup: SteeringSetup = noSteering;
	private vectorCache = new Map<string, SteeringVector>();
	/** The kernel that adds steering vectors (no SAE needed), on ORT's current device. */
	private vectorKernel: { device: GPUDevice; kernel: SteerKernel; dummy: GPUBuffer } | null = null;

	constructor(private session: ModelSession) {}

	/** The steering setup; a change during generation applies from the next token on. */
	async set(setup: SteeringSetup) {
		this.setup = { steerSpecial: setup.steerSpecial, features: setup.features.map((f) => ({ ...f })) };
		// Saved vectors the setup names are read from IndexedDB once, then kept.
		for (const f of this.setup.features)
			if (f.vector && !this.vectorCache.has(f.vector)) {
				const v = await getVector(f.vector).catch(() => undefined);
				if (v) this.vectorCache.set(v.id, v);
			}
	}

	/** Where the current setup steers: SAE features at the SAE's hook, each vector at its own. */
	private plan(m: Loaded): Plan {
		const plan: Plan = new Map();
		const at = (h: HookName) => plan.get(h) ?? plan.set(h, { features: [], vectors: [] }).get(h)!;
		const n = m.source.shape.nLayers;
		const sae = m.sae;
		for (const f of this.setup.features) {
			if (!Number.isFinite(f.value)) continue;
			if (f.vector) {
				const v = this.vectorCache.get(f.vector);
				if (v && v.model === m.info.id && v.values.length === m.source.shape.dModel)
					at(canonicalHook(v.hook, n)).vectors.push({ v, spec: f });
			} else if (sae && f.feature >= 0 && f.feature < sae.info.cfg.dSae) at(sae.hook).features.push(f);
		}
		return plan;
	}

	/** The residual hook that applies the current steering setup (read at every step: sliders act live). */
	private async hook(m: Loaded): Promise<ResidualHook | undefined> {
		const planned = this.plan(m);
		if (!planned.size) return undefined;
		await this.session.ensureCuts(m, [...planned.keys()]);
		const device = m.runner.backend === 'webgpu' ? await this.session.gpuDevice() : null;
		if (device && !this.vectorKernel)
			this.vectorKernel = { device, kernel: await SteerKernel.create(device), dummy: createStorage(device, 16, 'steer.no-acts') };
		const d = m.source.shape.dModel;
		return async (name, residual, rows) => {
			const setup = this.setup;
			const plan = this.plan(m).get(name);
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
	async sideBySide(
		prompt: string,
		settings: SamplingSettings,
		onToken: (stream: 'default' | 'steered', e: TokenEvent) => void
	): Promise<{ default: GenerateResult; steered: GenerateResult }> {
		const m = this.session.requireModel();
		this.session.requireLmHead(m);
		if (!m.sae && !this.setup.features.some((f) => f.vector))
			throw new LoupeError(
				'model-failed',
				'Nothing to steer with yet.',
				'Load an SAE and choose features, or make a contrast vector, first.'
			);
		return this.session.locked(async () => {
			this.session.clearStop();
			const hook = await this.hook(m);
			const text = this.session.promptText(m, prompt);
			const stopped = () => this.session.stopped;
			const base = await generate(m.runner, m.tokenizer, m.processor, text, settings, (e) => onToken('default', e), stopped);
			const steered = await generate(m.runner, m.tokenizer, m.processor, text, settings, (e) => onToken('steered', e), stopped, hook);
			return { default: base, steered };
		});
	}

	/** The `k` most likely next tokens after the prompt, without and with the current steering. */
	async nextTokenTable(prompt: string, k = 10): Promise<{ default: Ranked; steered: Ranked }> {
		const m = this.session.requireModel();
		this.session.requireLmHead(m);
		return this.session.locked(async () => {
			const ids = m.tokenizer.encode(prompt);
			const V = m.source.shape.vocabSize;
			const table = async (hook?: ResidualHook) => {
				m.runner.reset();
				const { logits, rows } = await m.runner.forward(ids, hook);
				const p = { temperature: 1, freqPenalty: 0 };
				const processed =
					m.processor && logits.location === 'gpu-buffer'
						? await m.processor.run(logits.gpuBuffer as GPUBuffer, rows, rows - 1, new Uint32Array(V), p)
						: logitsProcessReference(lastRowLogits(logits, rows, V), new Uint32Array(V), p);
				logits.dispose();
				return topK(processed.probs, k).map(([id, value]) => ({ id, value, piece: m.tokenizer.pieceText(id) }));
			};
			const hook = await this.hook(m);
			return { default: await table(), steered: await table(hook) };
		});
	}

	/**
	 * A contrast vector: the mean residual at `hook` over the positive prompts minus the mean over
	 * the negative ones (BOS left out), saved in IndexedDB for this model.
	 */
	async makeContrastVector(req: { name: string; hook: string; positive: string[]; negative: string[] }): Promise<VectorSummary> {
		const m = this.session.requireModel();
		const positive = req.positive.map((p) => p.trim()).filter(Boolean);
		const negative = req.negative.map((p) => p.trim()).filter(Boolean);
		if (!positive.length || !negative.length)
			throw new LoupeError(
				'model-failed',
				'A contrast vector needs at least one prompt on each side.',
				'Write one prompt per line in both boxes, e.g. "Love" and "Hate".'
			);
		if (m.source.dtype !== 'float32')
			throw new LoupeError(
				'model-failed',
				`${m.info.name} computes its residual in ${m.source.dtype}; steering reads fp32.`,
				'Open the fp32 export of this model.'
			);
		const hookName = this.session.canonical(m, req.hook);
		return this.session.locked(async () => {
			await this.session.ensureCuts(m, [hookName]);
			const d = m.source.shape.dModel;
			const meanOf = async (prompts: string[]) => {
				const acc = new ResidualMean(d);
				for (const p of prompts) {
					m.runner.reset();
					const { logits } = await m.runner.forward(m.tokenizer.encode(p), async (name, residual, rows) => {
						if (name !== hookName) return;
						const data =
							residual.location === 'gpu-buffer'
								? new Float32Array(await readBuffer(await this.session.gpuDevice(), residual.gpuBuffer as GPUBuffer, rows * d * 4))
								: (residual.data as Float32Array);
						acc.add(data, rows, 1);
					});
					logits.dispose();
				}
				return acc.mean();
			};
			const values = contrast(await meanOf(positive), await meanOf(negative));
			const v: SteeringVector = {
				id: newVectorId(),
				name: req.name.trim() || `${positive[0]} − ${negative[0]}`,
				model: m.info.id,
				hook: req.hook,
				values,
				positive,
				negative,
				createdAt: new Date().toISOString()
			};
			await saveVector(v);
			this.vectorCache.set(v.id, v);
			return summarizeVector(v);
		});
	}

	async listVectors(): Promise<VectorSummary[]> {
		const m = this.session.current;
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
	async savePreset(name: string, steer: string): Promise<SteeringPreset[]> {
		const m = this.session.requireModel();
		if (!name.trim()) throw new LoupeError('model-failed', 'A preset needs a name.', 'Type a name, then save.');
		await savePreset({ model: m.info.id, name: name.trim(), steer, sae: m.sae?.info.source ?? null, createdAt: new Date().toISOString() });
		return presetsFor(m.info.id);
	}

	async listPresets(): Promise<SteeringPreset[]> {
		const m = this.session.current;
		return m ? presetsFor(m.info.id).catch(() => []) : [];
	}

	async deletePreset(name: string): Promise<SteeringPreset[]> {
		const m = this.session.current;
		if (!m) return [];
		await deletePreset(m.info.id, name);
		return presetsFor(m.info.id);
	}

	/** A preset as a JSON file's text, with the steering vectors it uses (they live only here otherwise). */
	async exportPreset(name: string): Promise<string> {
		const m = this.session.requireModel();
		const p = (await presetsFor(m.info.id)).find((x) => x.name === name);
		if (!p) throw new LoupeError('not-found', `There is no preset "${name}".`, 'Pick one from the list.');
		const vectors = (await Promise.all(presetVectorIds(p).map((id) => getVector(id)))).filter((v): v is SteeringVector => !!v);
		return presetFileText(p, vectors);
	}

	/** Reads a preset file written by exportPreset, and keeps it with its vectors. */
	async importPreset(text: string): Promise<SteeringPreset> {
		const m = this.session.requireModel();
		const { preset, vectors } = parsePresetFile(text, m.info.id);
		for (const v of vectors) {
			await saveVector(v);
			this.vectorCache.set(v.id, v);
		}
		await savePreset(preset);
		return preset;
	}
}

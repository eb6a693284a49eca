/**
 * Steering: the current setup (SAE features and saved contrast vectors, each at its hook), the
 * residual hook that applies it live, contrast vectors (made, listed, kept in IndexedDB), presets
 * (saved, exported as files with their vectors, imported), and the side-by-side comparison (the
 * default and the steered completion, and the next-token table with and without steering).
 */
import { LoupeError } from '../errors';
import { canonicalHook, type HookName } from '../model/hooks';
import * as ort from 'onnxruntime-web/webgpu';
import { generate, generateIdsBatch, lastRowLogits, type GenerateResult, type TokenEvent } from '../model/generate';
import type { ResidualHook } from '../model/runner';
import type { Loaded, ModelSession } from '../model/session';
import type { SamplingSettings } from '../sample/sampler';
import { logitsProcessReference } from '../gpu/logits-process';
import { SteerKernel } from '../gpu/steer';
import { createStorage, readBuffer } from '../gpu/buffers';
import { topK } from '../sae/sae';
import type { RankedItem } from '../sae/features';
import { noSteering, steerRowsReference, type SteerFeature, type SteerRow, type SteeringSetup } from './spec';
import { MAX_LISTED_POSITIONS, scopeRows } from './scope';
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

	/**
	 * A setup naming SAE features the loaded SAE does not have (a link written for a wider SAE, a
	 * typo) is refused, naming the width, instead of being dropped in silence: a steered completion
	 * that quietly is not steered is the worst kind of wrong answer.
	 */
	private refuseUnknownFeatures(m: Loaded) {
		this.refuseBadEntries();
		const named = this.setup.features.filter((f) => !f.vector && Number.isFinite(f.value));
		if (!named.length) return;
		const list = (fs: SteerFeature[]) => fs.map((f) => `#${f.feature}`).join(', ');
		if (!m.sae)
			throw new LoupeError(
				'model-failed',
				`The steering setup names SAE feature${named.length > 1 ? 's' : ''} ${list(named)}, but no SAE is loaded to take ${named.length > 1 ? 'them' : 'it'} from.`,
				'Load the SAE the setup was made with, or remove those features (Reset).'
			);
		const width = m.sae.info.cfg.dSae;
		const beyond = named.filter((f) => f.feature >= width);
		if (beyond.length)
			throw new LoupeError(
				'model-failed',
				`The steering setup names feature${beyond.length > 1 ? 's' : ''} ${list(beyond)}, beyond this SAE's width: it has ${width.toLocaleString('en')} features (#0–#${width - 1}).`,
				`Remove ${beyond.length > 1 ? 'them' : 'it'} from the setup, or load the SAE the setup was made with.`
			);
	}

	/** Entries no forward can apply (the engine's API takes setups from more than the URL's parser). */
	private refuseBadEntries() {
		for (const f of this.setup.features) {
			const what = f.vector ? `The saved vector ${f.vector}` : `Feature #${f.feature}`;
			if (f.vector && f.mode === 'clamp')
				throw new LoupeError(
					'model-failed',
					`${what} is set to "clamp", but a saved vector has no activation to clamp.`,
					'Use add, orthogonal or cap for it.'
				);
			const s = f.scope;
			if (s?.kind === 'from' && !(Number.isInteger(s.n) && s.n >= 0))
				throw new LoupeError('model-failed', `${what} steers "from token ${s.n}": that is no position.`, 'Give a whole number, 0 or more.');
			if (
				s?.kind === 'positions' &&
				(!s.positions.length || s.positions.length > MAX_LISTED_POSITIONS || !s.positions.every((p) => Number.isInteger(p) && p >= 0))
			)
				throw new LoupeError(
					'model-failed',
					`${what} steers at a list of positions that is empty, longer than ${MAX_LISTED_POSITIONS} or holds something that is no position.`,
					'List positions as whole numbers from 0 (BOS), e.g. "3, 5-7".'
				);
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

	/**
	 * The residual hook that applies the current steering setup (read at every step: sliders act
	 * live). Each forward's rows sit at absolute positions runner.position … + rows − 1 (the prefill
	 * from 0, then one row per decode step), and `promptLength` says where the prompt ends, so each
	 * entry's scope becomes the rows of this forward it steers (scopeRows); an entry that steers
	 * none of them is left out of the call. SAE features apply first, then vectors, each in setup order.
	 */
	private async hook(m: Loaded, promptLength: number): Promise<ResidualHook | undefined> {
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
			const first = m.runner.position; // the absolute position of this forward's first row
			const rowsOf = (f: SteerFeature) => scopeRows(f.scope, first, rows, promptLength, !setup.steerSpecial);
			const features = plan.features.flatMap((f) => {
				const w = rowsOf(f);
				return w ? [{ ...f, rows: w }] : [];
			});
			if (features.length) await m.sae!.session.steer(residual, rows, features, -1);
			const vectors = plan.vectors.flatMap((x) => {
				const w = rowsOf(x.spec);
				return w ? [{ ...x, rows: w }] : [];
			});
			if (!vectors.length) return;
			// The direction: the vector, unit-normalised when asked (add; orthogonal and cap use û whatever it is).
			const unit = (spec: SteerFeature) => spec.mode === 'add' && spec.normalize;
			const dirs = () => {
				const out = new Float32Array(vectors.length * d);
				vectors.forEach(({ v, spec }, j) => {
					const n = unit(spec) ? vectorNorm(v.values) || 1 : 1;
					for (let i = 0; i < d; i++) out[j * d + i] = v.values[i] / n;
				});
				return out;
			};
			const rowsSpec: SteerRow[] = vectors.map(({ spec, rows: w }) => ({ mode: spec.mode, feature: 0, value: spec.value, rows: w }));
			const vk = this.vectorKernel;
			if (residual.location === 'gpu-buffer' && vk && vk.device === device) {
				const key = JSON.stringify(vectors.map(({ v, spec }) => [v.id, unit(spec)]));
				vk.kernel.apply(residual.gpuBuffer as GPUBuffer, rows, d, dirs, rowsSpec, key, vk.dummy, 1, -1);
			} else {
				// The wasm path: ORT's CPU tensor, edited in place by the kernel's reference.
				steerRowsReference((residual.data as Float32Array).subarray(0, rows * d), rows, d, dirs(), rowsSpec, null, 1, -1);
			}
		};
	}

	/**
	 * The default and the steered completion of the same prompt with the same settings and seed: as
	 * one batch of two sequences where the graph takes a batch (steering applied to row 1 only), else
	 * one after the other. Either way each stream is what a run of its own writes. `onToken` hears
	 * which stream each token belongs to.
	 */
	async sideBySide(
		prompt: string,
		settings: SamplingSettings,
		onToken: (stream: 'default' | 'steered', e: TokenEvent) => void,
		{ batched = true }: { batched?: boolean } = {}
	): Promise<{ default: GenerateResult; steered: GenerateResult; batched: boolean }> {
		const m = this.session.requireModel();
		this.session.requireLmHead(m);
		if (!m.sae && !this.setup.features.some((f) => f.vector))
			throw new LoupeError(
				'model-failed',
				'Nothing to steer with yet.',
				'Load an SAE and choose features, or make a contrast vector, first.'
			);
		this.refuseUnknownFeatures(m);
		return this.session.locked(async () => {
			this.session.clearStop();
			const text = this.session.promptText(m, prompt);
			const promptIds = m.tokenizer.encode(text);
			const hook = await this.hook(m, promptIds.length); // may re-cut the model: ask the runner after it
			const stopped = () => this.session.stopped;
			if (!batched || !m.runner.batchable) {
				const base = await generate(m.runner, m.tokenizer, m.processor, text, settings, (e) => onToken('default', e), stopped);
				const steered = await generate(m.runner, m.tokenizer, m.processor, text, settings, (e) => onToken('steered', e), stopped, hook);
				return { default: base, steered, batched: false };
			}
			const streams = ['default', 'steered'] as const;
			const decoders = streams.map(() => m.tokenizer.streamDecoder());
			const texts = ['', ''];
			for (const d of decoders) d.reset(promptIds[promptIds.length - 1]);
			const results = await generateIdsBatch(m.runner, m.processor, promptIds, settings, 2, {
				stopTokens: m.tokenizer.stopTokens,
				shouldStop: stopped,
				onResidual: hook && rowOnly(hook, 1, 2, m.source.shape.dModel, () => this.session.gpuDevice()),
				onToken: (row, token, index, tokensPerSecond) => {
					const piece = decoders[row].push(token);
					texts[row] += piece;
					onToken(streams[row], { token, text: piece, index, tokensPerSecond });
				}
			});
			const out = results.map((r, i) => ({ ...r, text: texts[i], promptTokens: promptIds.length }));
			return { default: out[0], steered: out[1], batched: true };
		});
	}

	/** The `k` most likely next tokens after the prompt, without and with the current steering. */
	async nextTokenTable(prompt: string, k = 10): Promise<{ default: Ranked; steered: Ranked }> {
		const m = this.session.requireModel();
		this.session.requireLmHead(m);
		this.refuseUnknownFeatures(m);
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
			const hook = await this.hook(m, ids.length); // every row is the prompt's
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

/**
 * A residual hook for one row of a batch: `hook` sees sequence `row` alone, as a [1, positions, d]
 * tensor, and its edits land in that row only. On the GPU the row is copied out to a buffer of its
 * own and back (the steering kernels bind a residual from offset 0); on the CPU it is a view of
 * ORT's tensor, edited in place.
 */
export function rowOnly(hook: ResidualHook, row: number, batch: number, d: number, gpuDevice: () => Promise<GPUDevice>): ResidualHook {
	return async (name, residual, rows) => {
		const S = rows / batch;
		const n = S * d;
		if (residual.location !== 'gpu-buffer') {
			const x = residual.data as Float32Array;
			await hook(name, new ort.Tensor('float32', x.subarray(row * n, (row + 1) * n), [1, S, d]), S);
			return;
		}
		const device = await gpuDevice();
		const buf = residual.gpuBuffer as GPUBuffer;
		const own = device.createBuffer({
			size: n * 4,
			usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
			label: 'steer.row'
		});
		const copy = (f: (e: GPUCommandEncoder) => void) => {
			const e = device.createCommandEncoder({ label: 'steer.row-copy' });
			f(e);
			device.queue.submit([e.finish()]);
		};
		copy((e) => e.copyBufferToBuffer(buf, row * n * 4, own, 0, n * 4));
		const t = ort.Tensor.fromGpuBuffer(own, { dataType: 'float32', dims: [1, S, d] });
		await hook(name, t, S);
		copy((e) => e.copyBufferToBuffer(own, 0, buf, row * n * 4, n * 4));
		device.queue.onSubmittedWorkDone().then(() => own.destroy());
	};
}

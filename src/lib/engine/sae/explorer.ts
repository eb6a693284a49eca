/**
 * The SAE explorer: attaching an SAE to the loaded model (from a hub folder, files, or a trained
 * run's SAELens files), analysing a prompt (each token's top features, the reconstruction error),
 * a feature's card (activations, logit effects, nearest features, label, density, corpus statistics
 * and top examples), corpus runs kept in IndexedDB, labels (Neuronpedia explanations, several per
 * feature, or one's own), and a feature or the labels written out as Neuronpedia files. The SAE
 * itself lives on the loaded model.
 */
import { LoupeError } from '../errors';
import type { HookName } from '../model/hooks';
import type { Loaded, ModelSession } from '../model/session';
import { corpusContexts, type CorpusProgress, type CorpusSpec } from '../model/corpus-contexts';
import { readSaeFiles, type ReadSae, type SaeFile } from './load';
import { readReleaseFiles, resolveSaeLensRelease } from './saelens-registry';
import { checkSaeFitsModel } from './validate';
import { SaeSession } from './session';
import { describePreprocessing, type SaeConfig } from './config';
import type { RankedItem } from './features';
import type { ReconMetrics } from './reconstruction';
import { HIST_BINS, TOP_EXAMPLES, featureDensities, featureHistogram, histBinRange } from './corpus-stats';
import { byNeuronpediaOrder, parseNeuronpediaExplanations, type ParsedExplanation } from './labels';
import { explanationsJsonl, featureDashboardJson } from './neuronpedia';
import { neuronpediaSource, toNeuronpediaFeature, type FeatureDetails, type TopExample } from './feature-pages';
import { getLabel, labelsFor, latestCorpusRun, putLabels, saveCorpusRun, type CorpusRun, type FeatureLabel } from '../store/db';
import { deleteCachedFile, fetchModelFile, hubFileUrl, type DownloadProgress } from '../store/model-cache';

export interface SaeInfo {
	name: string;
	cfg: SaeConfig;
	preprocessing: string[];
	source: string; // where it came from: a hub folder or file names
	onGpu: boolean;
	corpus: CorpusSummary | null; // statistics from an earlier corpus run, restored from IndexedDB
	/** log10 firing rate per feature from the SAE's sparsity.safetensors, when it came with one. */
	logSparsity?: Float32Array;
	/** Where feature densities come from now (the card and the density filter): a corpus run, the file, or nowhere yet. */
	densitySource: 'corpus' | 'sparsity.safetensors' | null;
}

export type { FeatureDetails, TopExample };

/** The SAE attached to the loaded model: its kernels, where it reads, its corpus run. */
export interface AttachedSae {
	session: SaeSession;
	info: SaeInfo;
	/** The canonical name of the hook it reads (the name the runner reports there). */
	hook: HookName;
	/** Names this SAE in IndexedDB (corpus runs, labels): source, hook and width. */
	key: string;
	run: CorpusRun | null;
	logSparsity?: Float32Array;
}

export interface CorpusSummary {
	corpus: string;
	contexts: number;
	tokens: number;
	createdAt: string;
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

function summarize(run: CorpusRun): CorpusSummary {
	return { corpus: run.corpus, contexts: run.contexts.length, tokens: run.stats.tokens, createdAt: run.createdAt };
}

export class SaeExplorer {
	constructor(private session: ModelSession) {}

	/** The loaded model and its SAE, or a message saying what to load first. */
	private requireSae(action = 'Load an SAE for this model first.'): { m: Loaded; sae: AttachedSae } {
		const m = this.session.requireModel();
		if (!m.sae) throw new LoupeError('model-failed', 'No SAE is loaded.', action);
		return { m, sae: m.sae };
	}

	/** Loads an SAE from a hub folder: SAELens files first, then Gemma Scope, then Gemma Scope 2. */
	async loadFromHub(req: SaeFromHub, onProgress: (p: DownloadProgress) => void): Promise<SaeInfo> {
		this.session.requireModel();
		const url = (file: string) => hubFileUrl(req.hub, req.repo, req.revision ?? 'main', `${req.folder.replace(/\/+$/, '')}/${file}`);
		const get = async (file: string): Promise<SaeFile | null> => {
			try {
				return { name: `${req.folder}/${file}`, buffer: (await fetchModelFile(url(file), onProgress)).buffer };
			} catch (e) {
				if (e instanceof LoupeError && e.code === 'not-found') return null;
				throw e;
			}
		};
		let files: SaeFile[];
		const cfg = await get('cfg.json');
		// sparsity.safetensors is optional, as SAE.from_pretrained treats it.
		if (cfg)
			files = [cfg, (await get('sae_weights.safetensors')) ?? cfg, ...[await get('sparsity.safetensors')].filter((f): f is SaeFile => !!f)];
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
			throw new LoupeError(
				'not-found',
				`No SAE files were found in ${req.repo}/${req.folder} (looked for cfg.json, params.npz and params.safetensors).`,
				'Check the repository and folder names.'
			);
		try {
			// Gemma Scope 1 names the hook site in the repository, not the folder.
			return await this.attachRead(() => readSaeFiles(files, { hookName: req.hookName, repo: req.repo }), `${req.repo}/${req.folder}`);
		} catch (e) {
			// Files that do not parse must not be served from the cache next time.
			if (e instanceof LoupeError && e.code === 'not-an-sae')
				await Promise.all(files.map((f) => deleteCachedFile(url(f.name.split('/').pop()!))));
			throw e;
		}
	}

	/** Loads an SAE from files the user picked (an SAELens folder's files, a params.npz, …). */
	async loadFromFiles(files: File[], hookName?: string): Promise<SaeInfo> {
		this.session.requireModel();
		const read = await Promise.all(files.map(async (f) => ({ name: f.webkitRelativePath || f.name, buffer: await f.arrayBuffer() })));
		return this.attach(read, files.map((f) => f.name).join(' + '), hookName);
	}

	/**
	 * Loads an SAE by its SAELens release and SAE id (`gpt2-small-res-jb`, `blocks.8.hook_resid_pre`),
	 * resolved as SAE.from_pretrained resolves them: the release's repository and folder, its config
	 * overrides and the SAE's Neuronpedia id; optional files (sparsity.safetensors) may be missing.
	 */
	async loadFromRelease(req: { hub: string; release: string; saeId: string }, onProgress: (p: DownloadProgress) => void): Promise<SaeInfo> {
		this.session.requireModel();
		const r = resolveSaeLensRelease(req.release, req.saeId);
		const url = (file: string) => hubFileUrl(req.hub, r.repo, 'main', `${r.folder}/${file}`);
		const get = async (file: string, optional: boolean): Promise<SaeFile | null> => {
			try {
				return { name: `${r.folder}/${file}`, buffer: (await fetchModelFile(url(file), onProgress)).buffer };
			} catch (e) {
				if (optional && e instanceof LoupeError && e.code === 'not-found') return null;
				if (e instanceof LoupeError && e.code === 'not-found')
					throw new LoupeError(
						'not-found',
						`${r.repo}/${r.folder} has no ${file}, which release ${r.release} says is there.`,
						'Check the hub (or its mirror) in Settings; the release may have moved.'
					);
				throw e;
			}
		};
		const files = [
			...(await Promise.all(r.files.map((f) => get(f, false)))),
			...(await Promise.all(r.optional.map((f) => get(f, true))))
		].filter((f): f is SaeFile => !!f);
		try {
			return await this.attachRead(() => readReleaseFiles(r, files), `${r.repo}/${r.folder}`);
		} catch (e) {
			if (e instanceof LoupeError && e.code === 'not-an-sae')
				await Promise.all(files.map((f) => deleteCachedFile(url(f.name.split('/').pop()!))));
			throw e;
		}
	}

	/** Attaches an SAE to the loaded model from its files (a trained run's SAELens files). */
	attach(files: SaeFile[], source: string, hookName?: string): Promise<SaeInfo> {
		return this.attachRead(() => readSaeFiles(files, { hookName }), source);
	}

	/** Attaches the SAE `read` gives, cutting the model at its hook (under the lock: not while it writes). */
	private attachRead(read: () => ReadSae, source: string): Promise<SaeInfo> {
		return this.session.locked(async () => {
			const m = this.session.requireModel();
			const c = m.source.shape;
			if (m.source.dtype !== 'float32')
				throw new LoupeError(
					'model-failed',
					`${m.info.name} computes its residual stream in ${m.source.dtype}; Loupe's SAE and steering kernels read fp32.`,
					'Open the fp32 export of this model to use SAEs with it.'
				);
			const { cfg, weights, logSparsity } = read();
			checkSaeFitsModel(cfg, { name: m.info.name, nLayers: c.nLayers, dModel: c.dModel, hooks: m.source.hooks });
			const hook = this.session.canonical(m, cfg.hookName);
			// The model must be cut at the SAE's hook so the residual can be read there.
			await this.session.ensureCuts(m, [hook]);
			const device = m.runner.backend === 'webgpu' ? await this.session.gpuDevice() : null;
			const unembed = { normWeight: null, ...(m.source.unembedding ?? { classifier: new Float32Array(c.vocabSize * c.dModel) }) };
			const session = await SaeSession.create(cfg, weights, device, { vocabSize: c.vocabSize, dModel: c.dModel, ...unembed });
			m.sae?.session.destroy();
			const key = `${source}|${cfg.hookName}|${cfg.dSae}`;
			const run = (await latestCorpusRun(m.info.id, key).catch(() => undefined)) ?? null;
			const info: SaeInfo = {
				name: cfg.name,
				cfg,
				preprocessing: describePreprocessing(cfg),
				source,
				onGpu: session.onGpu,
				corpus: run && summarize(run),
				logSparsity,
				densitySource: run ? 'corpus' : logSparsity ? 'sparsity.safetensors' : null
			};
			m.sae = { session, info, hook, key, run, logSparsity };
			return info;
		});
	}

	/** Runs the prompt and returns each token with its top `k` SAE features, and the reconstruction error. */
	async analyze(prompt: string, k = 8): Promise<{ tokens: AnalyzedToken[]; reconstruction: ReconMetrics }> {
		const { m, sae } = this.requireSae();
		return this.session.locked(async () => {
			const ids = m.tokenizer.encode(prompt);
			if (ids.length > m.source.shape.maxSeqLen)
				throw new LoupeError(
					'model-failed',
					`The text is ${ids.length} tokens; this model reads at most ${m.source.shape.maxSeqLen}.`,
					'Shorten the text.'
				);
			const { encoded: e, reconstruction } = await this.encodeContext(m, ids, k, true);
			m.lastPrompt = ids;
			const density = featureDensities({ stats: sae.run?.stats, logSparsity: sae.logSparsity })?.density;
			const tokens = ids.map((id, t) => ({
				id,
				piece: m.tokenizer.pieceText(id),
				features: Array.from({ length: e.k }, (_, j) => {
					const f = e.ids[t * e.k + j];
					return { id: f, value: e.values[t * e.k + j], density: density?.[f] };
				}).filter((x) => x.value > 0)
			}));
			return { tokens, reconstruction: reconstruction! };
		});
	}

	/** Runs the model over one context (from BOS) and encodes the residual at the SAE's hook. */
	private async encodeContext(m: Loaded, ids: number[], k: number, measure = false) {
		const hook = m.sae!.hook;
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
	async runCorpus(spec: CorpusSpec, onProgress: (p: CorpusProgress) => void): Promise<CorpusSummary> {
		const { m, sae } = this.requireSae();
		return this.session.locked(async () => {
			this.session.clearStop();
			const contexts = await corpusContexts(this.session, m, spec, onProgress);
			if (!contexts.length)
				throw new LoupeError(
					'model-failed',
					'The corpus is empty.',
					'Paste some text, choose a text file, or let the model write stories.'
				);
			const acc = await sae.session.statsRun();
			let tokens = 0;
			for (const [c, ids] of contexts.entries()) {
				if (this.session.stopped) throw new DOMException('stopped', 'AbortError');
				const { encoded: e } = await this.encodeContext(m, ids, 1);
				acc.add(e.tokens, c);
				tokens += ids.length;
				onProgress({ phase: 'encoding', done: c + 1, total: contexts.length, tokens });
			}
			const run: CorpusRun = {
				key: `${m.info.id}|${sae.key}|${spec.name}`,
				model: m.info.id,
				sae: sae.key,
				corpus: spec.name,
				createdAt: new Date().toISOString(),
				contexts,
				stats: await acc.finish()
			};
			await saveCorpusRun(run).catch((e) => {
				throw new LoupeError(
					'storage-full',
					`The corpus statistics could not be saved (${e instanceof Error ? e.message : e}).`,
					'Free space in the Storage panel; the results are shown but will not survive a reload.'
				);
			});
			sae.run = run;
			sae.info.corpus = summarize(run);
			sae.info.densitySource = 'corpus';
			return sae.info.corpus;
		});
	}

	/**
	 * Imports a Neuronpedia explanations export (JSON, JSONL or .jsonl.gz bytes) as labels for the
	 * loaded SAE: every explanation of a feature is kept; the one Neuronpedia lists first is its label.
	 */
	async importLabels(
		data: string | ArrayBuffer | Uint8Array,
		fileName: string
	): Promise<{ features: number; explanations: number; skipped: number }> {
		const { sae } = this.requireSae('Load the SAE these labels belong to first.');
		const { labels, explanations, skipped } = parseNeuronpediaExplanations(data, fileName);
		const dSae = sae.info.cfg.dSae;
		const inRange = labels.filter((l) => l.feature < dSae);
		const byFeature = new Map<number, ParsedExplanation[]>();
		for (const e of explanations) if (e.feature < dSae) byFeature.set(e.feature, [...(byFeature.get(e.feature) ?? []), e]);
		await putLabels(
			inRange.map((l) => ({
				sae: sae.key,
				feature: l.feature,
				description: l.description,
				source: 'neuronpedia' as const,
				explanations: [...byFeature.get(l.feature)!].sort(byNeuronpediaOrder)
			}))
		);
		const kept = [...byFeature.values()].reduce((n, list) => n + list.length, 0);
		return { features: inRange.length, explanations: kept, skipped: skipped + explanations.length - kept };
	}

	/** One's own label; the feature's imported explanations stay with it. */
	async setLabel(feature: number, description: string): Promise<FeatureLabel> {
		const { sae } = this.requireSae();
		const old = await getLabel(sae.key, feature).catch(() => undefined);
		const label: FeatureLabel = {
			sae: sae.key,
			feature,
			description: description.trim(),
			source: 'user',
			explanations: old?.explanations ?? []
		};
		await putLabels([label]);
		return label;
	}

	/** Features whose label contains `query` (case-insensitive), at most 50. */
	async searchLabels(query: string): Promise<FeatureLabel[]> {
		const sae = this.session.requireModel().sae;
		if (!sae) return [];
		const q = query.trim().toLowerCase();
		return (await labelsFor(sae.key)).filter((l) => l.description.toLowerCase().includes(q)).slice(0, 50);
	}

	/** The largest activation each feature reached in the corpus run (for strengths in those units). */
	featureMaxActs(features: number[]): (number | null)[] {
		const st = this.session.current?.sae?.run?.stats;
		return features.map((f) => (st && f >= 0 && f < st.dSae ? st.maxAct[f] : null));
	}

	/** A feature's page: its activations over the last analysed text, logit effects, nearest features. */
	async feature(f: number, k = 10): Promise<FeatureDetails> {
		const { m, sae } = this.requireSae();
		const s = sae.session;
		if (!(f >= 0 && f < s.sae.cfg.dSae))
			throw new LoupeError(
				'model-failed',
				`There is no feature ${f}: this SAE has features 0 to ${s.sae.cfg.dSae - 1}.`,
				'Enter a feature number in that range.'
			);
		return this.session.locked(async () => {
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
					examples.push({
						pieces: ids.map((id) => m.tokenizer.pieceText(id)),
						activations: await s.activations(f),
						position: st.topRef[2 * (f * TOP_EXAMPLES + j) + 1],
						value
					});
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
				density: this.densityOf(m.sae!, f),
				neuronpediaId: m.sae!.info.cfg.neuronpediaId,
				corpus
			};
		});
	}

	/** Feature f's density: from the corpus run, else the SAE's sparsity.safetensors, else unknown. */
	private densityOf(sae: AttachedSae, f: number): FeatureDetails['density'] {
		const d = featureDensities({ stats: sae.run?.stats, logSparsity: sae.logSparsity });
		return d ? { value: d.density[f], source: d.source } : null;
	}

	/** Feature f's page as Neuronpedia's /api/feature JSON (what parseNeuronpediaFeature, and Loupe's import, read back). */
	async featureNeuronpediaJson(f: number, k = 10): Promise<{ fileName: string; text: string }> {
		const details = await this.feature(f, k);
		const { m, sae } = this.requireSae();
		const source = neuronpediaSource(sae.info.cfg, m.info.id);
		const stats = sae.run?.stats;
		const json = featureDashboardJson(
			toNeuronpediaFeature(details, source, sae.info.cfg.hookName, stats ? featureHistogram(stats, f) : undefined)
		);
		return { fileName: `${source.modelId}_${source.layer}_${f}.json`, text: json };
	}

	/** Every label of the loaded SAE as Neuronpedia explanation JSON Lines (imported explanations as they came, one's own labels as one each). */
	async explanationsNeuronpediaJsonl(): Promise<{ fileName: string; text: string; count: number }> {
		const { m, sae } = this.requireSae();
		const source = neuronpediaSource(sae.info.cfg, m.info.id);
		const labels = (await labelsFor(sae.key)).sort((a, b) => a.feature - b.feature);
		const rows: ParsedExplanation[] = labels.flatMap((l) => [
			...(l.source === 'user' ? [{ feature: l.feature, description: l.description, typeName: 'loupe-user' }] : []),
			...l.explanations
		]);
		if (!rows.length)
			throw new LoupeError(
				'not-found',
				'This SAE has no labels to export yet.',
				'Import Neuronpedia explanations or write a label on a feature card first.'
			);
		return { fileName: `${source.modelId}_${source.layer}_explanations.jsonl`, text: explanationsJsonl(source, rows), count: rows.length };
	}
}

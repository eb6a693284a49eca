/**
 * The SAE explorer: attaching an SAE to the loaded model (delegated to attach.ts), analysing a
 * prompt (each token's top features, the features that fire on it, the reconstruction error; every
 * activation kept, so a card opened from the analysis runs no model), a feature's card (activations, logit effects, nearest features, label, density, corpus statistics
 * and top examples), corpus runs kept in IndexedDB, labels (Neuronpedia explanations, several per
 * feature, or one's own), and a feature or the labels written out as Neuronpedia files. The SAE
 * itself lives on the loaded model.
 */
import { LoupeError } from '../errors';
import type { HookName } from '../model/hooks';
import type { Loaded, ModelSession } from '../model/session';
import { corpusContexts, type CorpusProgress, type CorpusSpec } from '../model/corpus-contexts';
import type { SaeSession } from './session';
import type { SaeFile } from './load';
import { attachSae, loadSaeFromFiles, loadSaeFromHub, loadSaeFromRelease, summarize } from './attach';
import type { SaeConfig } from './config';
import type { RankedItem } from './features';
import type { ReconMetrics } from './reconstruction';
import { hookRows, transcoderReconstruction } from './transcoder-recon';
import { Transcoder } from './transcoder';
import { HIST_BINS, TOP_EXAMPLES, featureDensities, featureHistogram, histBinRange } from './corpus-stats';
import { byNeuronpediaOrder, parseNeuronpediaExplanations, type ParsedExplanation } from './labels';
import { explanationsJsonl, featureDashboardJson } from './neuronpedia';
import { neuronpediaSource, toNeuronpediaFeature, type FeatureDetails, type TopExample } from './feature-pages';
import { getLabel, labelsFor, putLabels, saveCorpusRun, type CorpusRun, type FeatureLabel } from '../store/db';
import type { DownloadProgress } from '../store/model-cache';
import { featureColumn, featuresOnText, sparsify, type FeatureOnText, type SparseActivations } from './text-features';

export type { FeatureOnText };

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

/** What `analyze` finds in a text. */
export interface TextAnalysis {
	tokens: AnalyzedToken[];
	/** Every feature that fires on the text (max and sum over the tokens after the first), strongest first. */
	features: FeatureOnText[];
	/** Null when there is no token after the first (BOS) to measure. */
	reconstruction: ReconMetrics | null;
}

export class SaeExplorer {
	/** The last analysed text's activations, for the SAE that made them (a card reads its column: no second run). */
	private last: { sae: SaeSession; ids: number[]; acts: SparseActivations } | null = null;

	constructor(private session: ModelSession) {}

	/** The loaded model and its SAE, or a message saying what to load first. */
	private requireSae(action = 'Load an SAE for this model first.'): { m: Loaded; sae: AttachedSae } {
		const m = this.session.requireModel();
		if (!m.sae) throw new LoupeError('model-failed', 'No SAE is loaded.', action);
		return { m, sae: m.sae };
	}

	/** Loads an SAE from a hub folder: SAELens files first, then Gemma Scope, then Gemma Scope 2 (attach.ts). */
	loadFromHub(req: SaeFromHub, onProgress: (p: DownloadProgress) => void): Promise<SaeInfo> {
		return loadSaeFromHub(this.session, req, onProgress);
	}

	/** Loads an SAE from files the user picked. */
	loadFromFiles(files: File[], hookName?: string): Promise<SaeInfo> {
		return loadSaeFromFiles(this.session, files, hookName);
	}

	/** Loads an SAE by its SAELens release and SAE id. */
	loadFromRelease(req: { hub: string; release: string; saeId: string }, onProgress: (p: DownloadProgress) => void): Promise<SaeInfo> {
		return loadSaeFromRelease(this.session, req, onProgress);
	}

	/** Attaches an SAE to the loaded model from its files (a trained run's SAELens files). */
	attach(files: SaeFile[], source: string, hookName?: string): Promise<SaeInfo> {
		return attachSae(this.session, files, source, hookName);
	}

	/** Runs the prompt and returns each token with its top `k` SAE features, the features that fire on it, and the reconstruction error. */
	async analyze(prompt: string, k = 8): Promise<TextAnalysis> {
		const { m, sae } = this.requireSae();
		if (!prompt.length)
			throw new LoupeError('model-failed', 'There is no text to analyse: the prompt is empty.', 'Type a prompt, then analyse it.');
		return this.session.locked(async () => {
			const ids = m.tokenizer.encode(prompt);
			if (ids.length > m.source.shape.maxSeqLen)
				throw new LoupeError(
					'model-failed',
					`The text is ${ids.length} tokens; this model reads at most ${m.source.shape.maxSeqLen}.`,
					'Shorten the text.'
				);
			// With nothing after the first token the metrics would average over no tokens (an MSE of 0).
			const { encoded: e, reconstruction } = await this.encodeContext(m, ids, k, ids.length > 1);
			m.lastPrompt = ids;
			const acts = sparsify(await sae.session.allActivations(), ids.length, sae.info.cfg.dSae);
			this.last = { sae: sae.session, ids, acts };
			const density = featureDensities({ stats: sae.run?.stats, logSparsity: sae.logSparsity })?.density;
			const tokens = ids.map((id, t) => ({
				id,
				piece: m.tokenizer.pieceText(id),
				features: Array.from({ length: e.k }, (_, j) => {
					const f = e.ids[t * e.k + j];
					return { id: f, value: e.values[t * e.k + j], density: density?.[f] };
				}).filter((x) => x.value > 0)
			}));
			return { tokens, features: featuresOnText(acts, density), reconstruction };
		});
	}

	/** Runs the model over one context (from BOS) and encodes the residual at the SAE's hook. */
	private async encodeContext(m: Loaded, ids: number[], k: number, measure = false) {
		const hook = m.sae!.hook;
		const cfg = m.sae!.info.cfg;
		// A transcoder reads hook_mlp_in and predicts hook_mlp_out: its reconstruction is measured against
		// the output hook's vectors, never against its own input.
		const out = cfg.hookNameOut ? this.session.canonical(m, cfg.hookNameOut as HookName) : null;
		const device = out && measure && m.runner.backend === 'webgpu' ? await this.session.gpuDevice() : null;
		let xIn: Float32Array | null = null;
		let encoded: Awaited<ReturnType<SaeSession['encode']>> | null = null;
		let reconstruction: ReconMetrics | null = null;
		m.runner.reset();
		const { logits } = await m.runner.forward(ids, async (name, residual, rows) => {
			if (name === hook) {
				encoded = await m.sae!.session.encode(residual, rows, k);
				if (measure && out) xIn = await hookRows(device, residual, rows, cfg.dIn);
				else if (measure) reconstruction = await m.sae!.session.reconstruction(residual, rows);
			} else if (measure && name === out && xIn) {
				const y = await hookRows(device, residual, rows, cfg.dOut ?? cfg.dIn);
				reconstruction = transcoderReconstruction(Transcoder.fromSae(cfg, m.sae!.session.sae.w), xIn, y, rows);
			}
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

	/** Feature f's activation at each token of the last analysed text (from the analysis: no model runs). */
	featureActivations(f: number): number[] {
		const sae = this.session.current?.sae;
		return this.last && sae && this.last.sae === sae.session ? featureColumn(this.last.acts, f) : [];
	}

	/** The labels of these features, where they have one (the ranked list shows them beside the ids). */
	async labelsOf(features: number[]): Promise<Record<number, string>> {
		const sae = this.session.current?.sae;
		if (!sae) return {};
		const want = new Set(features);
		return Object.fromEntries((await labelsFor(sae.key)).filter((l) => want.has(l.feature)).map((l) => [l.feature, l.description]));
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
			// The prompt's activations come from its analysis: opening a card runs no model over the prompt.
			const last = this.last?.sae === s ? this.last : null;
			return {
				feature: f,
				activations: last ? featureColumn(last.acts, f) : [],
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

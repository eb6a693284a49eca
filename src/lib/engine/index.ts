/**
 * The Engine: the typed API the UI calls, running in one dedicated Web Worker (worker.ts exposes it
 * with comlink). Calls return plain data; failures come back as `{ ok: false, error }` with a
 * message for people (see errors.ts). The work is done by one module per capability, composed here:
 *
 *   model/session.ts          the loaded model, its cuts, ORT's device, the lock; generating
 *   sae/attach.ts             SAEs: load from a hub folder, a release id, files; attach at the hook
 *   sae/explorer.ts           SAEs: analyse, feature cards, corpus runs, labels
 *   steer/steering.ts         steering setups, contrast vectors, presets, side by side
 *   train/trainer-service.ts  SAE training runs
 *   bench/benchmarks.ts       benchmarks on this device
 *   store/storage.ts          the model cache and the quota
 */
import { attempt, type Result } from './errors';
import { ModelSession, type EngineEvent, type LoadFromHub, type ModelInfo } from './model/session';
import {
	SaeExplorer,
	type AnalyzedToken,
	type CorpusSummary,
	type FeatureDetails,
	type FeatureOnText,
	type SaeFromHub,
	type SaeInfo
} from './sae/explorer';
import { Steering, type VectorSummary } from './steer/steering';
import { TrainerService } from './train/trainer-service';
import { Benchmarks } from './bench/benchmarks';
import { deleteCached, listCache, storageEstimate, storedItems, type StoredItem } from './store/storage';
import { parseNeuronpediaFeature } from './sae/neuronpedia';
import { fromNeuronpediaFeature } from './sae/feature-pages';
import { loadCatalogueModel, loadSaeByRelease } from './defaults/bundled';
import type { EngineStatus } from './model/backend';
import { requestBackend, type BackendRequest } from './model/backend';
import type { CorpusProgress, CorpusSpec } from './model/corpus-contexts';
import type { GenerateResult, TokenEvent } from './model/generate';
import type { SamplingSettings } from './sample/sampler';
import type { SteeringSetup } from './steer/spec';
import type { RankedItem } from './sae/features';
import type { ReconMetrics } from './sae/reconstruction';
import type { BenchLine } from './bench/bench-line';
import type { TrainConfig, TrainProgress, TrainRunSummary } from './train/training-run';
import type { TrainRates, CorpusSize } from './train/estimate';
import type { FeatureLabel, SteeringPreset } from './store/db';
import type { CachedFile, DownloadProgress } from './store/model-cache';

export type { Result } from './errors';
export type { EngineEvent, LoadFromHub, ModelInfo } from './model/session';
export type { EngineStatus } from './model/backend';
export type { BackendPreference, BackendRequest } from './model/backend';
export type { AnalyzedToken, CorpusSummary, FeatureDetails, FeatureOnText, SaeFromHub, SaeInfo, TopExample } from './sae/explorer';
export type { CorpusProgress, CorpusSpec } from './model/corpus-contexts';
export type { VectorSummary } from './steer/steering';
export type { TrainRunSummary };

type Ranked = (RankedItem & { piece: string })[];

export class Engine {
	private session = new ModelSession();
	private sae = new SaeExplorer(this.session);
	private steering = new Steering(this.session);
	private trainer = new TrainerService(this.session, this.sae);
	private benchmarks = new Benchmarks(this.session);

	// The model

	/** Finds out what this browser can run. Call once; `onEvent` hears about device loss. */
	init(onEvent?: (e: EngineEvent) => void): Promise<EngineStatus> {
		return this.session.init(onEvent);
	}

	/** Where the model should run (Settings, `?backend=`); the page calls it before `init`, which honours it. */
	setBackendPreference(r: BackendRequest) {
		requestBackend(r);
	}

	/** Loads a catalogue model from a hub (or its mirror), from the cache when it is there. */
	loadFromHub(req: LoadFromHub, onProgress: (p: DownloadProgress) => void): Promise<Result<ModelInfo>> {
		// The default model comes from the app's own copy (defaults/bundled.ts).
		return attempt(() => loadCatalogueModel(this.session, req, onProgress));
	}

	/** Loads a model the user picked from disk: llama2.c files, or an .onnx with its tokenizer files. */
	loadFromFiles(picked: File[], hooks: string[] = []): Promise<Result<ModelInfo>> {
		return attempt(() => this.session.loadFromFiles(picked, hooks));
	}

	/** The loaded model's info as it is now (the cut changes when an SAE or a steering vector needs a hook). */
	modelInfo(): ModelInfo | null {
		return this.session.current?.info ?? null;
	}

	/** ORT's own GPUDevice (kernels must run on it to share buffers with the model). */
	gpuDevice(): Promise<GPUDevice> {
		return this.session.gpuDevice();
	}

	generate(prompt: string, settings: SamplingSettings, onToken: (e: TokenEvent) => void): Promise<Result<GenerateResult>> {
		return attempt(() => this.session.generate(prompt, settings, onToken));
	}

	/** Stops the running generation or corpus run. */
	stop() {
		this.session.stop();
	}

	/** Chat mode: prompts go through the model's chat template (instruction-tuned models). */
	setChat(on: boolean) {
		this.session.setChat(on);
	}

	/** Token ids and their pieces, for showing how a prompt is split. */
	tokenize(text: string): { id: number; piece: string }[] {
		return this.session.tokenize(text);
	}

	// SAEs

	loadSaeFromHub(req: SaeFromHub, onProgress: (p: DownloadProgress) => void): Promise<Result<SaeInfo>> {
		return attempt(() => this.sae.loadFromHub(req, onProgress));
	}

	/** Loads an SAE by SAELens release and SAE id (the catalogue's entries), from `hub` or its mirror. */
	loadSaeFromRelease(
		req: { hub: string; release: string; saeId: string },
		onProgress: (p: DownloadProgress) => void
	): Promise<Result<SaeInfo>> {
		// Loupe's own bundled SAEs come from the app's copy, with their statistics and labels (defaults/bundled.ts).
		return attempt(() => loadSaeByRelease(this.sae, this.session, req, onProgress));
	}

	loadSaeFromFiles(files: File[], hookName?: string): Promise<Result<SaeInfo>> {
		return attempt(() => this.sae.loadFromFiles(files, hookName));
	}

	analyze(
		prompt: string,
		k = 8
	): Promise<Result<{ tokens: AnalyzedToken[]; features: FeatureOnText[]; reconstruction: ReconMetrics | null }>> {
		return attempt(() => this.sae.analyze(prompt, k));
	}

	feature(f: number, k = 10): Promise<Result<FeatureDetails>> {
		return attempt(() => this.sae.feature(f, k));
	}

	async featureMaxActs(features: number[]): Promise<(number | null)[]> {
		return this.sae.featureMaxActs(features);
	}

	runCorpus(spec: CorpusSpec, onProgress: (p: CorpusProgress) => void): Promise<Result<CorpusSummary>> {
		return attempt(() => this.sae.runCorpus(spec, onProgress));
	}

	/** Neuronpedia explanations (JSON, JSONL, .jsonl.gz: pass the file's bytes) as labels; counts features and explanations apart. */
	importLabels(data: string | ArrayBuffer, fileName: string): Promise<Result<{ features: number; explanations: number; skipped: number }>> {
		return attempt(() => this.sae.importLabels(data, fileName));
	}

	/** Feature f as Neuronpedia's feature JSON (the /api/feature response), to download. */
	featureNeuronpediaJson(f: number): Promise<Result<{ fileName: string; text: string }>> {
		return attempt(() => this.sae.featureNeuronpediaJson(f));
	}

	/** The loaded SAE's labels as Neuronpedia explanation JSON Lines, to download. */
	exportExplanations(): Promise<Result<{ fileName: string; text: string; count: number }>> {
		return attempt(() => this.sae.explanationsNeuronpediaJsonl());
	}

	/** A saved Neuronpedia feature page (JSON, gzipped or not) as a card to show offline; needs no model or SAE. */
	openNeuronpediaFeature(data: ArrayBuffer, fileName: string): Promise<Result<FeatureDetails>> {
		return attempt(async () => fromNeuronpediaFeature(parseNeuronpediaFeature(data, fileName), fileName));
	}

	setLabel(feature: number, description: string): Promise<Result<FeatureLabel>> {
		return attempt(() => this.sae.setLabel(feature, description));
	}

	/** Feature f's activation at each token of the last analysed text (no model runs). */
	async featureActivations(f: number): Promise<number[]> {
		return this.sae.featureActivations(f);
	}

	/** The labels of these features (those that have one), for the ranked list. */
	featureLabels(features: number[]): Promise<Result<Record<number, string>>> {
		return attempt(() => this.sae.labelsOf(features));
	}

	searchLabels(query: string): Promise<Result<FeatureLabel[]>> {
		return attempt(() => this.sae.searchLabels(query));
	}

	// Steering

	async setSteering(setup: SteeringSetup) {
		await this.steering.set(setup);
	}

	generateSideBySide(
		prompt: string,
		settings: SamplingSettings,
		onToken: (stream: 'default' | 'steered', e: TokenEvent) => void
	): Promise<Result<{ default: GenerateResult; steered: GenerateResult }>> {
		return attempt(() => this.steering.sideBySide(prompt, settings, onToken));
	}

	nextTokenTable(prompt: string, k = 10): Promise<Result<{ default: Ranked; steered: Ranked }>> {
		return attempt(() => this.steering.nextTokenTable(prompt, k));
	}

	makeContrastVector(req: { name: string; hook: string; positive: string[]; negative: string[] }): Promise<Result<VectorSummary>> {
		return attempt(() => this.steering.makeContrastVector(req));
	}

	listVectors(): Promise<VectorSummary[]> {
		return this.steering.listVectors();
	}

	deleteVector(id: string): Promise<void> {
		return this.steering.deleteVector(id);
	}

	savePreset(name: string, steer: string): Promise<Result<SteeringPreset[]>> {
		return attempt(() => this.steering.savePreset(name, steer));
	}

	listPresets(): Promise<SteeringPreset[]> {
		return this.steering.listPresets();
	}

	deletePreset(name: string): Promise<SteeringPreset[]> {
		return this.steering.deletePreset(name);
	}

	exportPreset(name: string): Promise<Result<string>> {
		return attempt(() => this.steering.exportPreset(name));
	}

	importPreset(text: string): Promise<Result<SteeringPreset>> {
		return attempt(() => this.steering.importPreset(text));
	}

	// Training

	train(cfg: TrainConfig, resumeId: string | null, onProgress: (p: TrainProgress) => void): Promise<Result<TrainRunSummary>> {
		return attempt(() => this.trainer.train(cfg, resumeId, onProgress));
	}

	pauseTraining() {
		this.trainer.pause();
	}

	stopTraining() {
		this.trainer.stop();
	}

	/** A short measurement of this machine for the train page's estimate (train/estimate.ts). */
	measureTraining(cfg: TrainConfig): Promise<Result<TrainRates & { text: CorpusSize | null }>> {
		return attempt(() => this.trainer.measure(cfg));
	}

	trainingRuns(): Promise<TrainRunSummary[]> {
		return this.trainer.runs();
	}

	deleteTrainingRun(id: string): Promise<void> {
		return this.trainer.deleteRun(id);
	}

	exportTrainedSae(id: string): Promise<Result<{ cfgJson: string; safetensors: Uint8Array; sparsity: Uint8Array }>> {
		return attempt(() => this.trainer.exportSae(id));
	}

	openTrainedSae(id: string): Promise<Result<SaeInfo>> {
		return attempt(() => this.trainer.openSae(id));
	}

	// Benchmarks

	bench(small: boolean): Promise<Result<BenchLine[]>> {
		return attempt(() => this.benchmarks.kernels(small));
	}

	benchTraining(small: boolean): Promise<Result<BenchLine[]>> {
		return attempt(() => this.benchmarks.training(small));
	}

	benchSegmentation(): Promise<Result<BenchLine[]>> {
		return attempt(() => this.benchmarks.segmentation());
	}

	/** stories260K's fused graph over the plain one, and side by side batched over sequential (`hub`: where the checkpoint is). */
	benchFused(small: boolean, hub: string): Promise<Result<BenchLine[]>> {
		return attempt(() => this.benchmarks.fused(small, hub));
	}

	// Storage

	listCache(): Promise<CachedFile[]> {
		return listCache();
	}

	deleteCached(url: string): Promise<boolean> {
		return deleteCached(url);
	}

	storageEstimate(): Promise<{ usage: number; quota: number } | null> {
		return storageEstimate();
	}

	/** Everything the site keeps (models, the app and its wasm, trained SAEs, IndexedDB records), with sizes. */
	storedItems(): Promise<StoredItem[]> {
		return storedItems();
	}
}

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
 *   attribution/service.ts    attribution graphs: transcoders, build, prune, interventions, saved graphs
 *   store/storage.ts          the model cache and the quota
 *
 * api-types.ts gathers the types this API takes and returns.
 */
import { attempt } from './errors';
import { ModelSession } from './model/session';
import { SaeExplorer } from './sae/explorer';
import { Steering } from './steer/steering';
import { TrainerService } from './train/trainer-service';
import { Benchmarks } from './bench/benchmarks';
import { AttributionService } from './attribution/service';
import { deleteCached, listCache, storageEstimate, storedItems } from './store/storage';
import { parseNeuronpediaFeature } from './sae/neuronpedia';
import { fromNeuronpediaFeature } from './sae/feature-pages';
import { loadCatalogueModel, loadSaeByRelease } from './defaults/bundled';
import { requestBackend } from './model/backend';
import type * as T from './api-types';

export type * from './api-types';

type Ranked = (T.RankedItem & { piece: string })[];

export class Engine {
	private session = new ModelSession();
	private sae = new SaeExplorer(this.session);
	private steering = new Steering(this.session);
	private trainer = new TrainerService(this.session, this.sae);
	private benchmarks = new Benchmarks(this.session);
	private attribution = new AttributionService(this.session);

	// The model

	/** Finds out what this browser can run. Call once; `onEvent` hears about device loss. */
	init(onEvent?: (e: T.EngineEvent) => void): Promise<T.EngineStatus> {
		return this.session.init(onEvent);
	}

	/** Where the model should run (Settings, `?backend=`); the page calls it before `init`, which honours it. */
	setBackendPreference(r: T.BackendRequest) {
		requestBackend(r);
	}

	/** Loads a catalogue model from a hub (or its mirror), from the cache when it is there. */
	loadFromHub(req: T.LoadFromHub, onProgress: (p: T.DownloadProgress) => void): Promise<T.Result<T.ModelInfo>> {
		// The default model comes from the app's own copy (defaults/bundled.ts).
		return attempt(() => loadCatalogueModel(this.session, req, onProgress));
	}

	/** Loads a model the user picked from disk: llama2.c files, or an .onnx with its tokenizer files. */
	loadFromFiles(picked: File[], hooks: string[] = []): Promise<T.Result<T.ModelInfo>> {
		return attempt(() => this.session.loadFromFiles(picked, hooks));
	}

	/** The loaded model's info as it is now (the cut changes when an SAE or a steering vector needs a hook). */
	modelInfo(): T.ModelInfo | null {
		return this.session.current?.info ?? null;
	}

	/** ORT's own GPUDevice (kernels must run on it to share buffers with the model). */
	gpuDevice(): Promise<GPUDevice> {
		return this.session.gpuDevice();
	}

	generate(prompt: string, settings: T.SamplingSettings, onToken: (e: T.TokenEvent) => void): Promise<T.Result<T.GenerateResult>> {
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

	/**
	 * Token ids and their pieces, for showing how a prompt is split. `chatTurn`: the text as the
	 * model reads it in chat mode, inside its template (steering's positions count those tokens).
	 */
	tokenize(text: string, o: { chatTurn?: boolean } = {}): { id: number; piece: string }[] {
		const t = o.chatTurn ? this.session.current?.tokenizer : undefined;
		return this.session.tokenize(t?.applyChatTemplate ? t.applyChatTemplate(text) : text);
	}

	// SAEs

	loadSaeFromHub(req: T.SaeFromHub, onProgress: (p: T.DownloadProgress) => void): Promise<T.Result<T.SaeInfo>> {
		return attempt(() => this.sae.loadFromHub(req, onProgress));
	}

	/** Loads an SAE by SAELens release and SAE id (the catalogue's entries), from `hub` or its mirror. */
	loadSaeFromRelease(
		req: { hub: string; release: string; saeId: string },
		onProgress: (p: T.DownloadProgress) => void
	): Promise<T.Result<T.SaeInfo>> {
		// Loupe's own bundled SAEs come from the app's copy, with their statistics and labels (defaults/bundled.ts).
		return attempt(() => loadSaeByRelease(this.sae, this.session, req, onProgress));
	}

	loadSaeFromFiles(files: File[], hookName?: string): Promise<T.Result<T.SaeInfo>> {
		return attempt(() => this.sae.loadFromFiles(files, hookName));
	}

	analyze(
		prompt: string,
		k = 8
	): Promise<T.Result<{ tokens: T.AnalyzedToken[]; features: T.FeatureOnText[]; reconstruction: T.ReconMetrics | null }>> {
		return attempt(() => this.sae.analyze(prompt, k));
	}

	feature(f: number, k = 10): Promise<T.Result<T.FeatureDetails>> {
		return attempt(() => this.sae.feature(f, k));
	}

	async featureMaxActs(features: number[]): Promise<(number | null)[]> {
		return this.sae.featureMaxActs(features);
	}

	runCorpus(spec: T.CorpusSpec, onProgress: (p: T.CorpusProgress) => void): Promise<T.Result<T.CorpusSummary>> {
		return attempt(() => this.sae.runCorpus(spec, onProgress));
	}

	/** Neuronpedia explanations (JSON, JSONL, .jsonl.gz: pass the file's bytes) as labels; counts features and explanations apart. */
	importLabels(
		data: string | ArrayBuffer,
		fileName: string
	): Promise<T.Result<{ features: number; explanations: number; skipped: number }>> {
		return attempt(() => this.sae.importLabels(data, fileName));
	}

	/** Feature f as Neuronpedia's feature JSON (the /api/feature response), to download. */
	featureNeuronpediaJson(f: number): Promise<T.Result<{ fileName: string; text: string }>> {
		return attempt(() => this.sae.featureNeuronpediaJson(f));
	}

	/** The loaded SAE's labels as Neuronpedia explanation JSON Lines, to download. */
	exportExplanations(): Promise<T.Result<{ fileName: string; text: string; count: number }>> {
		return attempt(() => this.sae.explanationsNeuronpediaJsonl());
	}

	/** A saved Neuronpedia feature page (JSON, gzipped or not) as a card to show offline; needs no model or SAE. */
	openNeuronpediaFeature(data: ArrayBuffer, fileName: string): Promise<T.Result<T.FeatureDetails>> {
		return attempt(async () => fromNeuronpediaFeature(parseNeuronpediaFeature(data, fileName), fileName));
	}

	setLabel(feature: number, description: string): Promise<T.Result<T.FeatureLabel>> {
		return attempt(() => this.sae.setLabel(feature, description));
	}

	/** Feature f's activation at each token of the last analysed text (no model runs). */
	async featureActivations(f: number): Promise<number[]> {
		return this.sae.featureActivations(f);
	}

	/** The labels of these features (those that have one), for the ranked list. */
	featureLabels(features: number[]): Promise<T.Result<Record<number, string>>> {
		return attempt(() => this.sae.labelsOf(features));
	}

	searchLabels(query: string): Promise<T.Result<T.FeatureLabel[]>> {
		return attempt(() => this.sae.searchLabels(query));
	}

	// Steering

	async setSteering(setup: T.SteeringSetup) {
		await this.steering.set(setup);
	}

	generateSideBySide(
		prompt: string,
		settings: T.SamplingSettings,
		onToken: (stream: 'default' | 'steered', e: T.TokenEvent) => void
	): Promise<T.Result<{ default: T.GenerateResult; steered: T.GenerateResult }>> {
		return attempt(() => this.steering.sideBySide(prompt, settings, onToken));
	}

	nextTokenTable(prompt: string, k = 10): Promise<T.Result<{ default: Ranked; steered: Ranked }>> {
		return attempt(() => this.steering.nextTokenTable(prompt, k));
	}

	makeContrastVector(req: { name: string; hook: string; positive: string[]; negative: string[] }): Promise<T.Result<T.VectorSummary>> {
		return attempt(() => this.steering.makeContrastVector(req));
	}

	listVectors(): Promise<T.VectorSummary[]> {
		return this.steering.listVectors();
	}

	deleteVector(id: string): Promise<void> {
		return this.steering.deleteVector(id);
	}

	savePreset(name: string, steer: string): Promise<T.Result<T.SteeringPreset[]>> {
		return attempt(() => this.steering.savePreset(name, steer));
	}

	listPresets(): Promise<T.SteeringPreset[]> {
		return this.steering.listPresets();
	}

	deletePreset(name: string): Promise<T.SteeringPreset[]> {
		return this.steering.deletePreset(name);
	}

	exportPreset(name: string): Promise<T.Result<string>> {
		return attempt(() => this.steering.exportPreset(name));
	}

	importPreset(text: string): Promise<T.Result<T.SteeringPreset>> {
		return attempt(() => this.steering.importPreset(text));
	}

	// Training

	train(cfg: T.TrainConfig, resumeId: string | null, onProgress: (p: T.TrainProgress) => void): Promise<T.Result<T.TrainRunSummary>> {
		return attempt(() => this.trainer.train(cfg, resumeId, onProgress));
	}

	pauseTraining() {
		this.trainer.pause();
	}

	stopTraining() {
		this.trainer.stop();
	}

	/** A short measurement of this machine for the train page's estimate (train/estimate.ts). */
	measureTraining(cfg: T.TrainConfig): Promise<T.Result<T.TrainRates & { text: T.CorpusSize | null }>> {
		return attempt(() => this.trainer.measure(cfg));
	}

	trainingRuns(): Promise<T.TrainRunSummary[]> {
		return this.trainer.runs();
	}

	/** Runs whose records fail the checkpoint check: id and why, for a "damaged" row with Delete. */
	damagedTrainingRuns = () => this.trainer.damagedRuns();

	deleteTrainingRun(id: string): Promise<void> {
		return this.trainer.deleteRun(id);
	}

	exportTrainedSae(id: string): Promise<T.Result<{ cfgJson: string; safetensors: Uint8Array; sparsity: Uint8Array }>> {
		return attempt(() => this.trainer.exportSae(id));
	}

	openTrainedSae(id: string): Promise<T.Result<T.SaeInfo>> {
		return attempt(() => this.trainer.openSae(id));
	}

	// Benchmarks

	/** A benchmark on this device (bench/benchmarks.ts): the SAE kernels, training, hook points' cost, the fused graph. */
	bench(name: T.BenchName, small: boolean, hub = ''): Promise<T.Result<T.BenchLine[]>> {
		return attempt(() => this.benchmarks.run(name, small, hub));
	}

	// Attribution

	/** Attribution graphs (attribution/service-api.ts lists the ops: transcoders, build with progress, stop, prune, intervene, …). */
	graph<K extends T.GraphOp>(
		op: K,
		req: T.GraphRequests[K],
		onProgress?: (p: T.GraphProgress) => void
	): Promise<T.Result<T.GraphReplies[K]>> {
		return attempt(() => this.attribution.run(op, req, onProgress));
	}

	// Storage

	listCache(): Promise<T.CachedFile[]> {
		return listCache();
	}

	deleteCached(url: string): Promise<boolean> {
		return deleteCached(url);
	}

	storageEstimate(): Promise<{ usage: number; quota: number } | null> {
		return storageEstimate();
	}

	/** Everything the site keeps (models, the app and its wasm, trained SAEs, IndexedDB records), with sizes. */
	storedItems(): Promise<T.StoredItem[]> {
		return storedItems();
	}
}

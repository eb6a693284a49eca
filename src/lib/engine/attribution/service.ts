/**
 * The engine's attribution graphs (composed by the Engine like the explorer and steering): the
 * transcoders loaded for the graph (dropped folders, or the app's defaults), the graph of the last
 * prompt (built on the loaded model's weights: a llama2.c checkpoint, or an export's traced from its
 * graph, model/onnx/decoder-weights.ts; or opened from a file or IndexedDB), its
 * pruning at the thresholds the page asks for, interventions on its features, feature cards and
 * labels for its nodes, export and import as Neuronpedia's graph JSON, saved graphs, and Stop.
 *
 * The backward passes run on ORT's device (WGSL) when the model runs on WebGPU (an export's norms and
 * biases are folded into the same linear context, linear-model.ts), on the TypeScript path otherwise; between batches the service yields to the worker's event loop, so a Stop arrives.
 */
import { LoupeError } from '../errors';
import type { Loaded, ModelSession } from '../model/session';
import type { ModelSource } from '../model/open';
import { traceDecoderWeights } from '../model/onnx/decoder-weights';
import type { DecoderWeights } from './exported-shape';
import { bundledHub } from '../defaults/bundled';
import { getLabel, putLabels } from '../store/db';
import { deleteGraph, getGraph, listGraphs, saveGraph } from '../store/graphs';
import { attribute, type AttributionGraph } from './graph';
import { cpuBackend, type BackwardBackend } from './backend';
import { gpuBackend } from './gpu-backend';
import type { LinearContext } from './linear-model';
import { frozenForward, type FrozenForward } from './frozen-forward';
import { greedyWithInterventions, interveneLogits, predictFromGraph } from './intervene';
import { fromNeuronpedia, toGraphFile, toNeuronpedia, type GraphFile } from './neuronpedia-graph';
import { pruneGraph } from './prune';
import { fileView, graphFromFile, graphView } from './graph-view';
import { transcoderFeatureCard } from './feature-card';
import { bundledTranscoders, HOW_TO_GET_TRANSCODERS, transcodersFromFiles, type TranscoderSet } from './transcoder-set';
import type * as A from './service-api';

/** circuit-tracer's prompt limit in Neuronpedia's graphs; memory grows with (features × targets). */
const MAX_TOKENS = 64;
/** Rows kept at most (the most influential features): (M + logits) × sources floats. */
const MAX_FEATURE_NODES = 3000;

interface Current {
	graph: AttributionGraph | null;
	/** A pruned file from elsewhere, drawn as it is (no graph to prune again). */
	file: GraphFile | null;
	prompt: string;
	forward: FrozenForward | null;
	/** The transcoder set it was built with (null: opened from a file). */
	set: TranscoderSet | null;
	clerps: Map<string, string>;
	thresholds: A.Thresholds;
}

export class AttributionService {
	private set: TranscoderSet | null = null;
	private current: Current | null = null;
	private stopRequested = false;
	private loads = 0;

	constructor(private session: ModelSession) {}

	run<K extends A.GraphOp>(op: K, req: A.GraphRequests[K], onProgress?: (p: A.GraphProgress) => void): Promise<A.GraphReplies[K]> {
		const ops: { [O in A.GraphOp]: (r: A.GraphRequests[O]) => Promise<A.GraphReplies[O]> } = {
			transcoders: (r) => this.loadTranscoders(r),
			build: (r) => this.build(r, onProgress),
			prune: async (r) => this.view(r),
			intervene: (r) => this.intervene(r),
			feature: (r) => this.feature(r),
			label: (r) => this.label(r),
			export: async (r) => this.export(r),
			import: async (r) => this.import(r.text, r),
			save: (r) => this.save(r),
			list: () => listGraphs(),
			open: (r) => this.open(r.id),
			delete: async (r) => (await deleteGraph(r.id), listGraphs()),
			stop: async () => ((this.stopRequested = true), null)
		};
		return (ops[op] as (r: A.GraphRequests[K]) => Promise<A.GraphReplies[K]>)(req);
	}

	/** Weights traced from an export's graph, once per model (the source is dropped with the model, and its entry with it). */
	private traced = new WeakMap<ModelSource, Promise<DecoderWeights>>();

	/**
	 * The loaded model's weights as the attribution reads them: a llama2.c checkpoint as parsed, or an
	 * export's initializers traced by the graph's structure (model/onnx/decoder-weights.ts), which
	 * refuses, saying why, shapes the attribution does not model.
	 */
	private async weights(m: Loaded): Promise<DecoderWeights> {
		const src = m.source;
		if (src.format === 'onnx') {
			if (!src.decoder || !src.readWeights)
				throw new LoupeError(
					'model-failed',
					`The graph of ${m.info.name} is not kept in memory for an attribution graph.`,
					'Reload the model, then build the graph again.'
				);
			if (!src.lmHead)
				throw new LoupeError(
					'model-failed',
					`${m.info.name} has no LM head, so a graph has no logits to explain.`,
					'Open a model with an LM head.'
				);
			let w = this.traced.get(src);
			if (!w) {
				const { decoder, readWeights } = src;
				w = readWeights().then((files) => traceDecoderWeights(decoder, files, { maxSeqLen: src.shape.maxSeqLen, name: m.info.name }));
				this.traced.set(src, w);
				w.catch(() => this.traced.delete(src));
			}
			return w;
		}
		// A llama2.c source keeps the checkpoint it parsed (model/open.ts): the graph reads those weights.
		const w = src.llamaWeights;
		if (!w)
			throw new LoupeError(
				'model-failed',
				`The weights of ${m.info.name} are not in memory for a graph.`,
				'Reload the model, then build the graph again.'
			);
		return w;
	}

	private info(s: TranscoderSet): A.TranscodersInfo {
		return {
			source: s.source,
			layers: s.transcoders.map((t) => ({
				layer: t.layer,
				name: t.name ?? `layer ${t.layer}`,
				dSae: t.dSae,
				architecture: t.k !== undefined ? `TopK (k ${t.k})` : t.threshold ? 'JumpReLU' : 'ReLU'
			}))
		};
	}

	private async loadTranscoders(r: A.GraphRequests['transcoders']): Promise<A.TranscodersInfo> {
		const m = this.session.requireModel();
		const n = m.source.shape.nLayers;
		// The latest request wins: folders dropped while the defaults are still downloading replace them.
		const seq = ++this.loads;
		const set = r.files?.length
			? await transcodersFromFiles(r.files, n)
			: await bundledTranscoders(bundledHub(), { id: m.info.id, nLayers: n }, () => {});
		if (seq === this.loads) this.set = set;
		return this.info(set);
	}

	private requireSet(): TranscoderSet {
		if (!this.set)
			throw new LoupeError('not-found', 'No transcoders are loaded, so there is nothing to replace the MLPs with.', HOW_TO_GET_TRANSCODERS);
		return this.set;
	}

	private piece = (t: number) => this.session.current?.tokenizer.pieceText(t) ?? `<${t}>`;

	private async build(r: A.GraphRequests['build'], onProgress?: (p: A.GraphProgress) => void): Promise<A.BuiltGraph> {
		const m = this.session.requireModel();
		const w = await this.weights(m);
		const set = this.requireSet();
		const tokens = m.tokenizer.encode(this.session.promptText(m, r.prompt));
		if (tokens.length > MAX_TOKENS)
			throw new LoupeError(
				'model-failed',
				`The prompt is ${tokens.length} tokens; a graph covers at most ${MAX_TOKENS} (memory grows with features × targets).`,
				'Shorten the prompt.'
			);
		this.stopRequested = false;
		const t0 = performance.now();
		const device = m.runner.backend === 'webgpu' ? await this.session.gpuDevice() : null;
		let dispose = () => {};
		const backend = async (ctx: LinearContext) => {
			const b = device ? await gpuBackend(device, ctx) : cpuBackend(ctx);
			if ('dispose' in b) dispose = b.dispose;
			return this.stoppable(b as BackwardBackend<unknown>);
		};
		try {
			const { graph, forward } = await attribute(w, tokens, set.transcoders, {
				maxFeatureNodes: Math.min(r.maxFeatureNodes ?? MAX_FEATURE_NODES, MAX_FEATURE_NODES),
				backend,
				onProgress: (done, total) => {
					const elapsedMs = performance.now() - t0;
					onProgress?.({ done, total, elapsedMs, etaMs: done ? (elapsedMs / done) * (total - done) : null });
				}
			});
			this.current = { graph, file: null, prompt: r.prompt, forward, set, clerps: new Map(), thresholds: r };
		} finally {
			dispose();
		}
		return { view: this.view(r), ms: performance.now() - t0, live: true, transcoders: set.source };
	}

	/** A backend that lets the worker hear a Stop between batches (the TS path never yields on its own). */
	private stoppable<G>(b: BackwardBackend<G>): BackwardBackend<G> {
		return {
			...b,
			results: async (g) => {
				const out = await b.results(g);
				await new Promise((res) => setTimeout(res, 0));
				if (this.stopRequested)
					throw new LoupeError('aborted', 'Stopped: the graph was not finished.', 'Press "Build graph" to start again.');
				return out;
			}
		};
	}

	private requireCurrent(): Current {
		if (!this.current)
			throw new LoupeError('not-found', 'There is no graph yet.', 'Type a prompt and press "Build graph", or open a saved graph.');
		return this.current;
	}

	private view(t: A.Thresholds) {
		const c = this.requireCurrent();
		c.thresholds = { nodeThreshold: t.nodeThreshold, edgeThreshold: t.edgeThreshold };
		if (!c.graph)
			return { ...fileView(c.file!), nodes: fileView(c.file!).nodes.map((n) => ({ ...n, clerp: c.clerps.get(n.id) ?? n.clerp })) };
		const p = pruneGraph(c.graph, t.nodeThreshold, t.edgeThreshold);
		return graphView(c.graph, p, { ...t, prompt: c.prompt, decode: this.piece, clerps: c.clerps });
	}

	/** What an intervention needs: the graph, the model's weights and transcoders for each of its layers. */
	private async live() {
		const c = this.requireCurrent();
		if (!c.graph)
			throw new LoupeError(
				'model-failed',
				'This graph was pruned where it was made, so Loupe has only its kept edges: it can be viewed, not intervened on.',
				'Build the graph here from its prompt (its prompt is in the box), then intervene.'
			);
		const m = this.session.requireModel();
		const w = await this.weights(m);
		const set = c.set ?? this.requireSet();
		c.forward ??= frozenForward(w, c.graph.tokens);
		return { c, g: c.graph, m, w, set, forward: c.forward };
	}

	private async intervene(r: A.GraphRequests['intervene']): Promise<A.InterventionResult> {
		const t0 = performance.now();
		const { g, m, w, set, forward } = await this.live();
		for (const iv of r.interventions)
			if (
				iv.layer < 0 ||
				iv.layer >= g.nLayers ||
				iv.pos < 0 ||
				iv.pos >= g.nPos ||
				iv.feature < 0 ||
				iv.feature >= set.transcoders[iv.layer].dSae
			)
				throw new LoupeError(
					'model-failed',
					`There is no feature #${iv.feature} at layer ${iv.layer}, position ${iv.pos} (${g.nLayers} layers, ${g.nPos} positions, ${set.transcoders[Math.min(Math.max(iv.layer, 0), g.nLayers - 1)].dSae} features a layer).`,
					'Pick a layer, position and feature inside the graph.'
				);
		const V = w.config.vocabSize;
		const P = g.nPos;
		const before = forward.logits.subarray((P - 1) * V, P * V);
		const after = interveneLogits(w, g.tokens, set.transcoders, r.interventions, r.attention, forward).subarray((P - 1) * V, P * V);
		const softmax = (x: ArrayLike<number>) => {
			let max = -Infinity;
			for (let i = 0; i < V; i++) max = Math.max(max, x[i]);
			const e = Float64Array.from({ length: V }, (_, i) => Math.exp(x[i] - max));
			const s = e.reduce((a, b) => a + b, 0);
			return e.map((v) => v / s);
		};
		const [pb, pa] = [softmax(before), softmax(after)];
		const order = Array.from({ length: V }, (_, i) => i).sort((a, b) => pa[b] - pa[a]);
		const mean = (x: Float64Array) => x.reduce((a, b) => a + b, 0) / V;
		const [mb, ma] = [mean(before), mean(after)];
		let predicted: Float64Array | null = null;
		try {
			predicted = predictFromGraph(g, r.interventions);
		} catch {
			predicted = null; // a feature that is not a node (injected, or pruned away before the rows were kept)
		}
		const N = g.features.length;
		let continuation: A.InterventionResult['continuation'] = null;
		if (r.steps > 0) {
			const text = (ids: number[]) => {
				const d = m.tokenizer.streamDecoder();
				d.reset(g.tokens[P - 1]);
				return ids.map((id) => d.push(id)).join('');
			};
			const steps = Math.min(r.steps, 64);
			continuation = {
				default: text(greedyWithInterventions(w, g.tokens, set.transcoders, [], steps)),
				intervened: text(greedyWithInterventions(w, g.tokens, set.transcoders, r.interventions, steps)),
				steps
			};
		}
		return {
			top: order.slice(0, 10).map((t) => ({ token: t, piece: this.piece(t), before: pb[t], after: pa[t] })),
			targets: g.logits.map((lg, k) => ({
				token: lg.token,
				piece: this.piece(lg.token),
				before: before[lg.token] - mb,
				after: after[lg.token] - ma,
				predicted: predicted ? predicted[N + k] : null
			})),
			continuation,
			ms: performance.now() - t0
		};
	}

	private labelKey = (set: TranscoderSet, layer: number) => set.transcoders[layer].name ?? `${set.id}|L${layer}`;

	private async feature(r: A.GraphRequests['feature']) {
		const { m, w, set, forward } = await this.live();
		const t = set.transcoders[r.layer];
		if (!t || r.feature < 0 || r.feature >= t.dSae)
			throw new LoupeError('not-found', `There is no feature #${r.feature} at layer ${r.layer}.`, 'Click a feature node of the graph.');
		const label = (await getLabel(this.labelKey(set, r.layer), r.feature).catch(() => undefined)) ?? null;
		return transcoderFeatureCard(w, forward, t, r.feature, (id) => m.tokenizer.pieceText(id), label);
	}

	private async label(r: A.GraphRequests['label']) {
		const c = this.requireCurrent();
		const set = c.set ?? this.set;
		if (set)
			await putLabels([{ sae: this.labelKey(set, r.layer), feature: r.feature, description: r.text, source: 'user', explanations: [] }]);
		const nodes = c.graph
			? c.graph.features
			: (c.file?.nodes.filter((n) => n.kind === 'feature').map((n) => ({ layer: n.layer, pos: n.pos, feature: n.index })) ?? []);
		for (const f of nodes) if (f.layer === r.layer && f.feature === r.feature) c.clerps.set(`${f.layer}_${f.feature}_${f.pos}`, r.text);
		return this.view(c.thresholds);
	}

	/** The graph as a Neuronpedia graph file: as shown (pruned) or whole (every edge: completeness can be checked). */
	private exportFile(pruned: boolean, t: A.Thresholds): GraphFile {
		const c = this.requireCurrent();
		const withClerps = (f: GraphFile): GraphFile => ({
			...f,
			nodes: f.nodes.map((n) => {
				const clerp = n.kind === 'feature' ? c.clerps.get(`${n.layer}_${n.index}_${n.pos}`) : undefined;
				return clerp === undefined ? n : { ...n, clerp };
			})
		});
		if (!c.graph) return withClerps(c.file!);
		const model = this.session.current?.info.id ?? 'model';
		const o = { slug: slug(c.prompt), scan: model, prompt: c.prompt, decode: this.piece };
		const prune = pruned ? { ...pruneGraph(c.graph, t.nodeThreshold, t.edgeThreshold), ...t } : undefined;
		return withClerps(toGraphFile(c.graph, { ...o, prune }));
	}

	private export(r: A.GraphRequests['export']) {
		const c = this.requireCurrent();
		const file = this.exportFile(r.pruned, r);
		const json = toNeuronpedia(file);
		json.qParams = { ...(json.qParams as object), pinnedIds: r.pinned, supernodes: r.supernodes };
		if (c.graph) {
			const s = c.graph.settings;
			(json.metadata as Record<string, unknown>).generation_settings = {
				max_n_logits: s.maxNLogits,
				desired_logit_prob: s.desiredLogitProb,
				batch_size: s.batchSize,
				max_feature_nodes: s.maxFeatureNodes
			};
		}
		return { fileName: `${file.slug}${r.pruned ? '' : '-unpruned'}.json`, text: JSON.stringify(json) };
	}

	private import(text: string, t: A.Thresholds): A.BuiltGraph {
		const t0 = performance.now();
		let json: unknown;
		try {
			json = JSON.parse(text);
		} catch (e) {
			throw new LoupeError(
				'not-a-graph',
				`This file is not JSON (${(e as Error).message}).`,
				"Choose a graph JSON file (Loupe's export, circuit-tracer's or Neuronpedia's)."
			);
		}
		const file = fromNeuronpedia(json);
		const graph = graphFromFile(file);
		const clerps = new Map(
			file.nodes.filter((n) => n.kind === 'feature' && n.clerp).map((n) => [`${n.layer}_${n.index}_${n.pos}`, n.clerp])
		);
		const thresholds = { nodeThreshold: t.nodeThreshold, edgeThreshold: t.edgeThreshold };
		this.current = { graph, file, prompt: file.prompt, forward: null, set: null, clerps, thresholds };
		const q = (json as { qParams?: { pinnedIds?: string[]; supernodes?: string[][] } }).qParams;
		const live =
			!!graph && !!this.set && this.set.transcoders.length === graph.nLayers && this.session.current?.source.format === 'llama2c';
		return {
			view: this.view(thresholds),
			ms: performance.now() - t0,
			live,
			state: { pinned: q?.pinnedIds ?? [], supernodes: (q?.supernodes ?? []).filter((s) => Array.isArray(s) && s.length > 1) },
			transcoders: file.scan
		};
	}

	private async save(r: A.GraphRequests['save']) {
		const c = this.requireCurrent();
		const file = this.exportFile(false, r.view);
		const json = toNeuronpedia(file);
		json.qParams = { ...(json.qParams as object), pinnedIds: r.view.pinned, supernodes: r.view.supernodes };
		await saveGraph({
			id: `g${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`,
			name: r.name.trim() || c.prompt.slice(0, 40) || 'graph',
			model: this.session.current?.info.id ?? file.scan,
			prompt: c.prompt,
			createdAt: new Date().toISOString(),
			view: r.view,
			nodes: file.nodes.length,
			links: file.links.length,
			json: JSON.stringify(json)
		});
		return listGraphs();
	}

	private async open(id: string): Promise<A.BuiltGraph> {
		const g = await getGraph(id);
		if (!g) throw new LoupeError('not-found', 'That saved graph is no longer in this browser.', 'Pick another from the list.');
		const built = this.import(g.json, g.view);
		// The graph keeps the transcoders it was made with only by name: intervene with the loaded set when it fits.
		if (this.current?.graph && this.set && built.live) this.current.set = this.set;
		return { ...built, state: { ...g.view, ...built.state } };
	}
}

const slug = (prompt: string) =>
	prompt
		.toLowerCase()
		.replace(/[^a-z0-9]+/g, '-')
		.replace(/^-|-$/g, '')
		.slice(0, 40) || 'graph';

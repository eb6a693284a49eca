/**
 * What the graph page asks of the engine's attribution service (service.ts) and what comes back:
 * one operation name, its request and its reply, so the Engine carries the whole capability in one
 * method (`graph(op, req, onProgress)`).
 */
import type { FeatureDetails } from '../sae/feature-pages';
import type { GraphViewState, SavedGraphSummary } from '../store/graphs';
import type { GraphView } from './graph-view';
import type { InterventionMode } from './intervene';
import type { PathedFile } from './transcoder-set';

export type { GraphView, ViewNode } from './graph-view';
export type { GraphViewState, SavedGraphSummary } from '../store/graphs';
export type { InterventionMode } from './intervene';

/** Set feature `feature` of layer `layer` at prompt position `pos` to `value` (0 ablates; a feature inactive there is injected). */
export interface GraphIntervention {
	layer: number;
	pos: number;
	feature: number;
	value: number;
}

export interface TranscodersInfo {
	source: string;
	layers: { layer: number; name: string; dSae: number; architecture: string }[];
}

export interface GraphProgress {
	done: number;
	total: number;
	elapsedMs: number;
	/** From the rate so far; null before the first batch. */
	etaMs: number | null;
}

export interface Thresholds {
	nodeThreshold: number;
	edgeThreshold: number;
}

export interface BuiltGraph {
	view: GraphView;
	/** How long the build took, and the logits' probabilities on the prompt (the graph's targets). */
	ms: number;
	/** Whether interventions can run on it (the model's weights and the transcoders it was built with are here). */
	live: boolean;
	/** Kept with a saved or imported graph (qParams), to restore the view. */
	state?: Partial<GraphViewState>;
	/** The transcoders it was made with, for people. */
	transcoders: string;
}

export interface TokenChange {
	token: number;
	piece: string;
	before: number;
	after: number;
}

export interface InterventionResult {
	/** The top 10 next tokens after the intervention, with their probabilities before and after. */
	top: TokenChange[];
	/**
	 * The graph's logit nodes: demeaned logits before and after, and what the graph predicts for the
	 * change to first order (null when an intervened feature is not a node of the graph).
	 */
	targets: (TokenChange & { predicted: number | null })[];
	/** Greedy continuations from the prompt, default and intervened, when asked for. */
	continuation: { default: string; intervened: string; steps: number } | null;
	ms: number;
}

export interface GraphRequests {
	/** Load transcoders: these folders' files, or (none given) the ones the app ships for the model. */
	transcoders: { files?: PathedFile[] };
	build: Thresholds & { prompt: string; maxFeatureNodes?: number };
	prune: Thresholds;
	intervene: { interventions: GraphIntervention[]; attention: InterventionMode; steps: number };
	feature: { layer: number; feature: number };
	label: { layer: number; feature: number; text: string };
	export: Thresholds & { pruned: boolean; pinned: string[]; supernodes: string[][] };
	import: Thresholds & { text: string };
	save: { name: string; view: GraphViewState };
	list: Record<string, never>;
	open: { id: string };
	delete: { id: string };
	stop: Record<string, never>;
}

export interface GraphReplies {
	transcoders: TranscodersInfo;
	build: BuiltGraph;
	prune: GraphView;
	intervene: InterventionResult;
	feature: FeatureDetails;
	label: GraphView;
	export: { fileName: string; text: string };
	import: BuiltGraph;
	save: SavedGraphSummary[];
	list: SavedGraphSummary[];
	open: BuiltGraph;
	delete: SavedGraphSummary[];
	stop: null;
}

export type GraphOp = keyof GraphRequests;

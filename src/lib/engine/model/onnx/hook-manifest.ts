/**
 * Graph surgery on an exported decoder, start to end: parse the graph file (weights stay where they
 * are), trace the residual stream, name it with TransformerLens hook names, and cut the graph into
 * segments at the hooks asked for. The manifest is plain JSON: the CLI prints it, the engine caches
 * it with the model and the UI shows it.
 */
import { GraphIndex, decodeModel } from './graph';
import { traceResidual, type ResidualTrace } from './trace-residual';
import { describeDecoderIo, type DecoderIo } from './decoder-io';
import { cutAtHooks, offeredHooks, type CutSegment } from './cut-segments';
import { embeddingAsInput } from './embedding-outside';
import { weightsInPieces, type InPieces } from './weight-pieces';
import { boundaryAliases, everyHookName, type HookName } from '../hooks';
import type { SegmentSpec } from '../segments';

export interface HookManifest {
	architecture: string;
	producer: string;
	dModel: number;
	vocabSize: number;
	nLayers: number;
	dtype: string;
	embedding: string;
	/** Every residual-stream hook point (resid_pre/post) and the graph tensor behind it. */
	hooks: Record<HookName, { tensor: string; source: string; exposed: boolean }>;
	/**
	 * The hooks inside the layers that surgery found (attn_out, mlp_in, mlp_out), in layer order;
	 * those it could not find are named in `warnings` with the reason.
	 */
	sublayerHooks: Record<HookName, { tensor: string; source: string; exposed: boolean }>;
	/** Every hook a cut can be asked for (both kinds), in TransformerLens order: what hook pickers list. */
	hookNames: HookName[];
	kvCache: { layout: 'separate' | 'stacked' | 'none'; pairs: { past: string; present: string }[] };
	io: DecoderIo;
	segments: {
		index: number;
		layers: [number, number];
		residualIn?: HookName;
		residualOut?: HookName;
		inputs: string[];
		outputs: string[];
		nodes: number;
	}[];
	warnings: string[];
}

export interface ExportedDecoder {
	graph: GraphIndex;
	trace: ResidualTrace;
	io: DecoderIo;
}

/** Parses and traces an exported decoder graph; throws TraceError with a reason when it cannot. */
export function openExportedDecoder(graphBytes: Uint8Array): ExportedDecoder {
	const graph = new GraphIndex(decodeModel(graphBytes));
	const trace = traceResidual(graph);
	const io = describeDecoderIo(graph);
	return { graph, trace, io };
}

/**
 * Cuts at any hooks the manifest offers (residual or inside a layer); throws TraceError for one it
 * does not. The token embedding's lookup is taken out of the segments where it can be (the segment
 * that read it takes its rows as an input, `embedding` says where they are: embedding-outside.ts);
 * `embeddingOutside: false` keeps it in. With the lookup out, the head's weight is read in pieces
 * (weight-pieces.ts; `pieceBytes` for tests, else PIECE_BYTES); every segment lists the column files
 * those pieces read (`columnFiles`).
 */
export function cutExportedDecoder(
	d: ExportedDecoder,
	hooks: HookName[],
	o: { embeddingOutside?: boolean; pieceBytes?: number } = {}
): CutSegment[] {
	const outside = o.embeddingOutside === false ? null : embeddingAsInput(d.graph, d.trace, d.io.inputIds.name);
	if (!outside) return cutAtHooks(d.graph, d.trace, hooks);
	const { graph, columnFiles } = o.pieceBytes ? weightsInPieces(outside.graph, o.pieceBytes) : inPieces(outside.graph);
	const segments = cutAtHooks(graph, d.trace, hooks);
	for (const s of segments) {
		if (s.inputNames.includes(outside.embedding.input)) s.embedding = outside.embedding;
		if (columnFiles.length) s.columnFiles = columnFiles;
	}
	return segments;
}

const pieced = new WeakMap<GraphIndex, InPieces>();

/** The graph with its head's weight in pieces (weight-pieces.ts), once per graph: every cut shares it. */
function inPieces(g: GraphIndex): InPieces {
	if (!pieced.has(g)) pieced.set(g, weightsInPieces(g));
	return pieced.get(g)!;
}

export function hookManifest(d: ExportedDecoder, segments: (SegmentSpec & { nodeCount?: number })[]): HookManifest {
	const { trace, io, graph } = d;
	const hooks: HookManifest['hooks'] = {};
	trace.boundaries.forEach((b, i) => {
		for (const name of boundaryAliases(i, trace.nLayers)) hooks[name] = { tensor: b.tensor, source: b.source, exposed: b.exposed };
	});
	const ordered = Object.fromEntries(Object.entries(hooks).sort(([a], [b]) => hookOrder(a) - hookOrder(b)));
	const sublayerHooks: HookManifest['sublayerHooks'] = {};
	for (const name of everyHookName(trace.nLayers)) {
		const site = trace.sites[name];
		if (site) sublayerHooks[name] = { tensor: site.tensor, source: site.source, exposed: site.exposed };
	}
	const rank = io.kv[0]?.dims.length ?? 0;
	return {
		architecture: trace.architecture,
		producer: [graph.model.producerName, graph.model.producerVersion].filter(Boolean).join(' '),
		dModel: trace.dModel,
		vocabSize: trace.vocabSize,
		nLayers: trace.nLayers,
		dtype: trace.dtype,
		embedding: trace.embedding,
		hooks: ordered,
		sublayerHooks,
		hookNames: offeredHooks(trace),
		kvCache: {
			layout: rank === 0 ? 'none' : rank === 5 ? 'stacked' : 'separate',
			pairs: io.kv.map(({ past, present }) => ({ past, present }))
		},
		io,
		segments: segments.map((s) => ({
			index: s.index,
			layers: s.layers,
			residualIn: s.residualIn,
			residualOut: s.residualOut,
			inputs: s.inputNames,
			outputs: s.outputNames,
			nodes: s.nodeCount ?? 0
		})),
		warnings: trace.warnings
	};
}

function hookOrder(name: string): number {
	const m = /^blocks\.(\d+)\.hook_resid_(pre|post)$/.exec(name)!;
	return Number(m[1]) * 2 + (m[2] === 'post' ? 1 : 0);
}

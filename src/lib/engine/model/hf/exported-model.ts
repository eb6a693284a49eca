/**
 * An exported ONNX decoder from the Hub (or files from disk), opened for Loupe: the precision
 * variant chosen for the adapter (skipping the catalogue's known-broken ones), the graph file parsed
 * and traced (weights in external data are fetched as they are, checked against the graph's offsets
 * and handed to onnxruntime untouched; weights inside the graph file are handed over the same way,
 * as references into the graph's own bytes, so no segment carries a copy), the tokenizer, and
 * functions that cut the model at any hook points. A model too large for the page is refused from
 * the graph's own sizes, before its sidecar files are fetched. `openExportGraph` is the part
 * without a tokenizer (`npm run generate` uses it).
 *
 * Memory: the files may be WeightFiles (read on demand, onnx/weight-file.ts), and the graph's own
 * weights may be handed as one (`graphWeights`), so that after opening nothing here holds a
 * model's bytes; `dropWeights` forgets the files, for an engine that hands them to each cut itself.
 */
import { LoupeError } from '../../errors';
import { TraceError } from '../onnx/trace-residual';
import { boundariesOf, cutAtBoundaries } from '../onnx/cut-segments';
import { isResidHook, type HookName } from '../hooks';
import { externalDataFiles } from '../onnx/external-data';
import { checkExternalData } from '../onnx/external-data-extent';
import { inlineWeightsAsExternal } from '../onnx/inline-as-external';
import { gemmForTiedHead } from '../onnx/tied-head';
import { refuseWhatCannotFit, weightBytes, type WeightBytes } from '../onnx/size-limits';
import { cutExportedDecoder, hookManifest, openExportedDecoder, type ExportedDecoder, type HookManifest } from '../onnx/hook-manifest';
import { HubTokenizer } from './tokenizer';
import type { OnnxModel, OnnxVariant } from '../catalogue';
import type { SegmentedModel } from '../segments';

export interface Precision {
	dtype: OnnxVariant['dtype'];
	file: string;
	/** Why this one, in words for people. */
	reason: string;
}

export interface HubFile {
	path: string;
	size: number;
}

/** The Hub's tree API: `{hub}/api/models/{repo}/tree/{revision}/{folder}`. */
export function hubTreeUrl(hub: string, repo: string, revision: string, folder: string): string {
	return `${hub.replace(/\/+$/, '')}/api/models/${repo}/tree/${encodeURIComponent(revision)}/${folder}`;
}

export function parseHubTree(json: unknown): HubFile[] {
	if (!Array.isArray(json))
		throw new LoupeError('not-found', 'The hub did not answer with a file list.', 'Check the hub address in Settings.');
	return json
		.filter((e) => e && typeof e === 'object' && (e as { type?: string }).type !== 'directory')
		.map((e) => ({ path: String((e as { path: string }).path), size: Number((e as { size?: number }).size ?? 0) }));
}

/**
 * Picks the variant to download. Loupe's kernels read an fp32 residual, so fp32 comes first;
 * fp16 and q4f16 need the adapter's `shader-f16`; int8 is the fallback on any adapter. Variants
 * the catalogue lists as known to break for this model (`precisionExceptions`) are never picked,
 * and the reason says so.
 */
export function choosePrecision(entry: OnnxModel, files: HubFile[], shaderF16: boolean): Precision & { bytes: number } {
	const have = new Map(files.map((f) => [f.path.split('/').pop()!, f.size]));
	const exceptionFor = (dtype: OnnxVariant['dtype']) => entry.precisionExceptions?.find((x) => x.dtypes.includes(dtype));
	// The exceptions that apply to a variant the repo has: said with whatever is picked instead.
	const excepted = [...new Set(entry.variants.filter((v) => have.has(v.file) && exceptionFor(v.dtype)).map((v) => exceptionFor(v.dtype)!))];
	const notes = excepted.map((x) => `Not ${x.dtypes.join(' or ')}: ${x.reason}`);
	for (const v of entry.variants) {
		if (!have.has(v.file) || exceptionFor(v.dtype)) continue;
		const needsF16 = v.dtype === 'fp16' || v.dtype === 'q4f16';
		if (needsF16 && !shaderF16) continue;
		const why =
			v.dtype === 'fp32'
				? 'fp32: runs on every WebGPU adapter, and SAE features and steering read the residual in fp32.'
				: needsF16
					? `${v.dtype}: the adapter has shader-f16 and there is no fp32 export.`
					: `${v.dtype}: the smallest variant that runs${shaderF16 ? '' : ' without shader-f16'}.`;
		return { dtype: v.dtype, file: v.file, reason: [why, ...notes].join(' '), bytes: have.get(v.file)! };
	}
	const listed = [...have.keys()].filter((f) => f.endsWith('.onnx'));
	throw new LoupeError(
		'not-found',
		`${entry.repo} has no ONNX export Loupe can run here (found: ${listed.join(', ') || 'no .onnx files'}${shaderF16 ? '' : '; fp16 variants need shader-f16, which this GPU lacks'}).${notes.length ? ' ' + notes.join(' ') : ''}`,
		'Pick another model.'
	);
}

/** An exported graph opened for the runner: traced, its sidecar files read and checked, ready to cut. */
export interface OpenedGraph {
	decoder: ExportedDecoder;
	/**
	 * What onnxruntime reads weights from: the sidecar files by the names the graph gives, and, for
	 * weights stored inside the graph, the graph's own bytes under `GRAPH_WEIGHTS` (inline-as-external.ts).
	 */
	externalData: { path: string; data: Uint8Array }[];
	/** Bytes of weights, inside the graph and in each sidecar (as the graph was before the rewrite). */
	weights: WeightBytes;
	maxSeqLen: number;
	shape: SegmentedModel['shape'];
	/** The graph cut at the given boundaries, ready for the runner. */
	segment(cuts: number[]): SegmentedModel;
	/** The graph cut at hooks by name, residual or inside a layer (attn_out, mlp_in, mlp_out). */
	segmentAt(hooks: HookName[]): SegmentedModel;
	manifest(model: SegmentedModel): HookManifest;
	/**
	 * Forgets the weight files: `externalData` is empty from here, and cuts come without them (the
	 * caller hands each cut its files, re-read, when it builds sessions, and drops them after).
	 */
	dropWeights(): void;
}

export interface OpenedExport extends OpenedGraph {
	tokenizer: HubTokenizer;
}

type Json = Record<string, unknown>;

export interface OpenGraphOptions {
	/** Where it will run: on 'wasm' a model whose weights cannot fit in onnxruntime's heap is refused. */
	backend?: 'webgpu' | 'wasm';
	/** False keeps weights stored in the graph inline in every segment (the old way; for comparison). */
	weightsInPlace?: boolean;
	/**
	 * The graph file's bytes as onnxruntime should read the weights stored inside it (a WeightFile
	 * over the same file): the decoded `graph` bytes are then not kept once the graph is open.
	 */
	graphWeights?: Uint8Array;
}

/**
 * Opens a graph file whose sidecar files `fetchSidecar` provides by the names the graph gives:
 * surgery, the sidecars checked against the graph's offsets, the context length from `config`.
 * The app (with a tokenizer, `openExport`) and `npm run generate` (token ids only) share it.
 */
export async function openExportGraph(
	graph: ArrayBuffer | Uint8Array,
	graphName: string,
	fetchSidecar: (path: string) => Promise<ArrayBuffer | Uint8Array>,
	config: Json = {},
	options: OpenGraphOptions = {}
): Promise<OpenedGraph> {
	const bytes = graph instanceof Uint8Array ? graph : new Uint8Array(graph);
	let decoder: ExportedDecoder;
	try {
		decoder = openExportedDecoder(bytes);
	} catch (e) {
		if (e instanceof TraceError)
			throw new LoupeError(
				'unsupported-checkpoint',
				`Loupe cannot put hook points in ${graphName}: ${e.message}`,
				'Pick another model or another export of it.'
			);
		throw new LoupeError(
			'not-a-checkpoint',
			`${graphName}: ${(e as Error).message}`,
			'The download may be broken: delete it in Storage and try again.'
		);
	}
	const weights = weightBytes(decoder.graph);
	refuseWhatCannotFit(graphName, bytes.byteLength, weights, options.backend);
	const externalData = await Promise.all(
		externalDataFiles(decoder.graph).map(async (path) => {
			const data = await fetchSidecar(path);
			return { path, data: data instanceof Uint8Array ? data : new Uint8Array(data) };
		})
	);
	checkExternalData(decoder.graph, graphName, externalData);
	// After surgery and the checks: from here the graph's large initializers point into its own bytes.
	// A tied head as MatMul(x, Transpose(W_E)) read as Gemm on W_E: two fewer copies of it in onnxruntime.
	if (options.weightsInPlace !== false && decoder.io.lmHead !== false)
		decoder = { ...decoder, graph: gemmForTiedHead(decoder.graph, decoder.io.logits) };
	const inPlace = options.weightsInPlace === false ? null : inlineWeightsAsExternal(decoder.graph, bytes);
	if (inPlace) {
		if (options.graphWeights && options.graphWeights.byteLength !== bytes.byteLength)
			throw new LoupeError(
				'truncated',
				`${graphName} is ${bytes.byteLength} bytes, but the copy to read its weights from is ${options.graphWeights.byteLength}: the file changed while it was opened.`,
				'Open the model again.'
			);
		externalData.push({ path: inPlace.path, data: options.graphWeights ?? inPlace.data });
	}
	let files: { path: string; data: Uint8Array }[] | undefined = externalData;
	const fromConfig = [config.max_position_embeddings, config.n_positions, config.n_ctx].find((x): x is number => typeof x === 'number');
	const maxSeqLen = Math.min(fromConfig ?? decoder.io.maxSeqLen ?? 2048, decoder.io.maxSeqLen ?? Infinity);
	const { trace } = decoder;
	const shape = { nLayers: trace.nLayers, dModel: trace.dModel, vocabSize: trace.vocabSize, maxSeqLen };
	const segment = (cuts: number[]): SegmentedModel => ({
		shape,
		io: decoder.io,
		cuts: [...cuts].sort((a, b) => a - b),
		segments: cutAtBoundaries(
			decoder.graph,
			trace,
			[...new Set(cuts)].sort((a, b) => a - b)
		),
		externalData: files
	});
	const segmentAt = (hooks: HookName[]): SegmentedModel => ({
		shape,
		io: decoder.io,
		cuts: boundariesOf(hooks.filter(isResidHook), trace.nLayers),
		segments: cutExportedDecoder(decoder, hooks),
		externalData: files
	});
	return {
		decoder,
		get externalData() {
			return files ?? [];
		},
		weights,
		maxSeqLen,
		shape,
		segment,
		segmentAt,
		manifest: (model) => hookManifest(decoder, model.segments),
		dropWeights: () => {
			files = undefined;
		}
	};
}

/** Opens a graph file and its tokenizer (the app's path for Hub repos and local files). */
export async function openExport(
	graph: ArrayBuffer | Uint8Array,
	graphName: string,
	fetchSidecar: (path: string) => Promise<ArrayBuffer | Uint8Array>,
	tokenizerJson: Json,
	tokenizerConfig: Json,
	config: Json,
	options: OpenGraphOptions = {}
): Promise<OpenedExport> {
	const opened = await openExportGraph(graph, graphName, fetchSidecar, config, options);
	// Not spread: `externalData` is a getter that `dropWeights` empties.
	return Object.assign(opened, { tokenizer: new HubTokenizer(tokenizerJson, tokenizerConfig, config) });
}

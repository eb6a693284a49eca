/**
 * Opening a model, whichever way it comes: a catalogue entry from the hub (a llama2.c checkpoint, or
 * an exported ONNX decoder in the variant this adapter can run), or files the user picked. What it
 * yields is a ModelSource, everything the session needs of a model; the session starts the runner.
 *
 * Memory: an export's weights are never held whole in the worker. The files stay where they are
 * (the Cache API's entry, the File the user picked: Blobs, not read) and are handed to onnxruntime
 * as WeightFiles that read one tensor's range at a time (`readWeights`, for each cut's sessions);
 * the session drops them once the sessions exist. The unembedding (an SAE's feature logits) is
 * read only when asked for (`loadUnembedding`).
 */
import { LoupeError } from '../errors';
import { readLlama2cCheckpoint, type LlamaWeights } from './llama2c/checkpoint';
import { Llama2cTokenizer } from './llama2c/tokenizer';
import { buildLlamaOnnx } from './llama2c/to-onnx';
import { chosenBackend } from './backend';
import { boundaryName, everyHookName, type HookName } from './hooks';
import { offeredHooks } from './onnx/cut-segments';
import type { Llama2cModel, OnnxModel } from './catalogue';
import type { DecoderIo } from './onnx/decoder-io';
import type { DecoderShape, SegmentedModel } from './segments';
import type { TextTokenizer } from './generate';
import type { ExportedDecoder, HookManifest } from './onnx/hook-manifest';
import { choosePrecision, hubTreeUrl, openExport, parseHubTree, type Precision } from './hf/exported-model';
import { findUnembedding, unembeddingWeight } from './onnx/unembedding';
import { blobWeights, canReadBlobsInPlace } from './onnx/weight-file';
import { GRAPH_WEIGHTS } from './onnx/inline-as-external';
import { refuseDownloadThatCannotFit } from './onnx/size-limits';
import { distinctParameterCount } from './parameter-count';
import {
	deleteCachedFile,
	fetchModelBlob,
	fetchModelFile,
	hubFileUrl,
	type DownloadProgress,
	type FetchedFile
} from '../store/model-cache';

export interface Unembedding {
	classifier: Float32Array;
	normWeight: Float32Array | null;
}

/** Weight files as onnxruntime's `externalData` takes them. */
export type WeightFiles = { path: string; data: Uint8Array }[];

/** Where the engine runs a model: on 'wasm' a model too large for onnxruntime's heap is refused before it is downloaded. */
type Backend = 'webgpu' | 'wasm';

/** What the status line needs of each fetched file (from the cache, and any warning about storing it). */
export type FetchedInfo = Pick<FetchedFile, 'fromCache' | 'cacheWarning'>;

/** What the engine needs of a model, whichever way it was opened. */
export interface ModelSource {
	format: 'llama2c' | 'onnx';
	architecture: string;
	shape: DecoderShape;
	/** The residual stream's element type ('float32', 'float16'). */
	dtype: string;
	/** Distinct parameters: a tied LM head stored twice (once transposed) counts once. */
	parameters: number;
	/** False for a base model whose graph ends in a hidden state: it cannot write text. */
	lmHead: boolean;
	tokenizer: TextTokenizer & {
		pieceText(id: number): string;
		applyChatTemplate?: (prompt: string) => string;
		readonly hasChatTemplate?: boolean;
	};
	/**
	 * The model cut at these hooks (canonical names, residual or inside a layer; a number is a
	 * residual boundary), as ONNX segments; `cutHooks` names every cut.
	 */
	segment(cuts: (number | HookName)[]): SegmentedModel;
	/** Every hook a cut can be asked for, in TransformerLens order (what the hook pickers list). */
	hooks: HookName[];
	/**
	 * The weight files a cut's sessions read (onnxruntime's `externalData`), read again for each cut
	 * from where they live (WeightFiles that read a range at a time where the engine runs in a
	 * worker; the whole file in a page's main thread). The session hands them to the runner and drops
	 * them once its sessions exist. Absent where the segments carry their weights (llama2.c).
	 */
	readWeights?: () => Promise<WeightFiles>;
	/** Whether the graph has an unembedding to read (known from its structure at open). */
	hasUnembedding: boolean;
	/** W_U as [vocab, d_model] and the final norm's scale, for feature logits; read when first asked for (an SAE), then kept; null where not found. */
	loadUnembedding(): Promise<Unembedding | null>;
	/** What `loadUnembedding` answered, null before it was asked (llama2.c: always there). */
	readonly unembedding: Unembedding | null;
	manifest?: (model: SegmentedModel) => HookManifest;
	precision?: Precision;
	/** A llama2.c model's weights as parsed (attribution graphs read them: attribution/service.ts). */
	llamaWeights?: LlamaWeights;
	/**
	 * An export's graph after surgery (its structure and trace; initializer bytes are read through
	 * `readWeights`): what reads weights by structure outside onnxruntime (attribution graphs).
	 */
	decoder?: ExportedDecoder;
}

/**
 * A model whose files are here: `build` makes its source (under the session's lock: parsing a
 * checkpoint is model work); `onFail` forgets cached files that turned out not to parse.
 */
export interface OpenedModel {
	build: () => ModelSource;
	files: FetchedInfo[];
	onFail?: (e: unknown) => Promise<void>;
}

/** Error codes that mean a file itself is bad: it must not be served from the cache next time. */
const BAD_FILE = ['truncated', 'not-a-checkpoint', 'unsupported-checkpoint', 'not-a-tokenizer', 'tokenizer-mismatch'];

/** A llama2.c catalogue entry's checkpoint and tokenizer from the hub (or the cache). */
export async function openLlama2cFromHub(
	entry: Llama2cModel,
	hub: string,
	onProgress: (p: DownloadProgress) => void
): Promise<OpenedModel> {
	const url = (path: string) => hubFileUrl(hub, entry.repo, entry.revision, path);
	const urls = [url(entry.files.checkpoint), url(entry.files.tokenizer)];
	const [ckpt, tok] = await Promise.all(urls.map((u) => fetchModelFile(u, onProgress)));
	return {
		build: () => llama2cSource(ckpt, tok, entry.files.checkpoint.split('/').pop()!, entry.files.tokenizer.split('/').pop()!),
		files: [ckpt, tok],
		onFail: async (e) => {
			if (e instanceof LoupeError && BAD_FILE.includes(e.code)) await Promise.all(urls.map(deleteCachedFile));
		}
	};
}

/** An exported ONNX decoder from the hub: the Hub's file list, the variant for this adapter, surgery. */
export async function openExportFromHub(
	entry: OnnxModel,
	hub: string,
	shaderF16: boolean,
	onProgress: (p: DownloadProgress) => void,
	backend?: Backend
): Promise<OpenedModel> {
	const url = (path: string) => hubFileUrl(hub, entry.repo, entry.revision, path);
	const tree = await fetchModelFile(hubTreeUrl(hub, entry.repo, entry.revision, entry.onnxFolder), onProgress);
	const files = parseHubTree(JSON.parse(new TextDecoder().decode(tree.buffer)));
	const precision = choosePrecision(entry, files, shaderF16);
	// Before any byte of the model: the graph, and its weights files (by the exporters' names for them, model.onnx_data…).
	const sidecarBytes = files.filter((f) => f.path.split('/').pop()!.startsWith(precision.file)).reduce((a, f) => a + f.size, 0);
	refuseDownloadThatCannotFit(precision.file, precision.bytes, backend, Math.max(sidecarBytes, precision.bytes));
	for (const f of files) if (f.path.split('/').pop()!.startsWith(`${precision.file}_data`)) refuseDownloadThatCannotFit(f.path, f.size);
	const graphUrl = url(`${entry.onnxFolder}/${precision.file}`);
	const json = async (path: string, optional = false) => {
		try {
			return JSON.parse(new TextDecoder().decode((await fetchModelFile(url(path), onProgress)).buffer));
		} catch (e) {
			if (optional && e instanceof LoupeError && e.code === 'not-found') return {};
			throw e;
		}
	};
	const [graph, tokenizerJson, tokenizerConfig, config] = await Promise.all([
		fetchModelBlob(graphUrl, onProgress),
		json('tokenizer.json'),
		json('tokenizer_config.json', true),
		json('config.json', true)
	]);
	const fetched: FetchedInfo[] = [graph];
	const blobs = new Map<string, Blob>([[GRAPH_WEIGHTS, graph.blob]]);
	const opened = await openExportFromBlobs(
		graph.blob,
		precision.file,
		async (path) => {
			const f = await fetchModelBlob(url(`${entry.onnxFolder}/${path}`), onProgress);
			fetched.push(f);
			return f.blob;
		},
		blobs,
		tokenizerJson,
		tokenizerConfig,
		config,
		backend
	).catch(async (e) => {
		if (e instanceof LoupeError && e.code === 'not-a-checkpoint') await deleteCachedFile(graphUrl);
		throw e;
	});
	const source = exportSource(opened, blobs, { ...precision });
	return { build: () => source, files: fetched };
}

/**
 * Opens an export whose files are Blobs (the cache's entries, picked Files): the graph is read
 * whole to parse it (then let go), the weights files are not read at all, only handed on as
 * WeightFiles; `blobs` collects each weights file's Blob by the path onnxruntime knows it by.
 */
async function openExportFromBlobs(
	graph: Blob,
	graphName: string,
	sidecar: (path: string) => Promise<Blob>,
	blobs: Map<string, Blob>,
	tokenizerJson: Record<string, unknown>,
	tokenizerConfig: Record<string, unknown>,
	config: Record<string, unknown>,
	backend?: Backend
) {
	return openExport(
		await graph.arrayBuffer(),
		graphName,
		async (path) => {
			const blob = await sidecar(path);
			blobs.set(path, blob);
			return blobWeights(blob, path);
		},
		tokenizerJson,
		tokenizerConfig,
		config,
		// Where blobs can be read in place, the weights inside the graph are read from its Blob too,
		// so the parsed bytes go once the graph is open; elsewhere those bytes are the one copy.
		{ backend, graphWeights: canReadBlobsInPlace() ? await blobWeights(graph, graphName) : undefined }
	);
}

/** A model the user picked from disk: llama2.c files, or an .onnx with its tokenizer files. */
export async function openFiles(picked: File[], backend?: Backend): Promise<OpenedModel & { id: string }> {
	const byName = new Map(picked.map((f) => [f.name, f]));
	const onnxFile = picked.find((f) => f.name.endsWith('.onnx'));
	if (onnxFile) {
		const text = async (name: string, required: boolean) => {
			const f = byName.get(name);
			if (!f && required)
				throw new LoupeError(
					'not-found',
					`To open ${onnxFile.name}, also choose its ${name}.`,
					'Choose the .onnx file, its weights file (if any), tokenizer.json, tokenizer_config.json and config.json together.'
				);
			return f ? JSON.parse(await f.text()) : {};
		};
		const blobs = new Map<string, Blob>([[GRAPH_WEIGHTS, onnxFile]]);
		const opened = await openExportFromBlobs(
			onnxFile,
			onnxFile.name,
			async (path) => {
				const f = byName.get(path.split('/').pop()!);
				if (!f)
					throw new LoupeError(
						'not-found',
						`${onnxFile.name} keeps its weights in "${path}", which was not chosen with it.`,
						`Choose ${path} together with the .onnx file.`
					);
				return f;
			},
			blobs,
			await text('tokenizer.json', true),
			await text('tokenizer_config.json', false),
			await text('config.json', false),
			backend
		);
		const source = exportSource(opened, blobs);
		return { build: () => source, files: [], id: `file:${onnxFile.name}` };
	}
	if (picked.length !== 2)
		throw new LoupeError(
			'not-found',
			`Choose two llama2.c files together (checkpoint and tokenizer), or an .onnx with its tokenizer.json. You gave ${picked.length}.`,
			'Pick the files again.'
		);
	const [tokenizer, checkpoint] = [...picked].sort((a, b) => a.size - b.size);
	const read = async (f: File): Promise<FetchedFile> => ({ buffer: await f.arrayBuffer(), fromCache: false });
	const source = llama2cSource(await read(checkpoint), await read(tokenizer), checkpoint.name, tokenizer.name);
	return { build: () => source, files: [], id: `file:${checkpoint.name}` };
}

/** A llama2.c checkpoint and tokenizer, turned into ONNX segments by Loupe's own builder. */
function llama2cSource(ckpt: FetchedFile, tok: FetchedFile, ckptName: string, tokName: string): ModelSource {
	const weights = readLlama2cCheckpoint(ckpt.buffer, ckptName);
	const tokenizer = new Llama2cTokenizer(tok.buffer, weights.config.vocabSize, tokName);
	const c = weights.config;
	return {
		format: 'llama2c',
		architecture: 'llama',
		dtype: 'float32',
		shape: { nLayers: c.nLayers, dModel: c.dim, vocabSize: c.vocabSize, maxSeqLen: c.seqLen },
		parameters:
			weights.tokenEmbedding.length +
			c.nLayers * (2 * c.dim + 2 * c.dim * c.dim + 2 * c.dim * ((c.dim * c.nKvHeads) / c.nHeads) + 3 * c.dim * c.hiddenDim) +
			c.dim +
			(c.sharedClassifier ? 0 : c.vocabSize * c.dim),
		lmHead: true,
		tokenizer,
		segment: (cuts) => buildLlamaOnnx(weights, cuts, { fused: chosenBackend() === 'webgpu' }),
		hooks: everyHookName(c.nLayers),
		hasUnembedding: true,
		// The checkpoint is in memory anyway (the builder reads it for every cut): its head costs nothing more.
		unembedding: { classifier: weights.classifier, normWeight: weights.rmsFinal },
		loadUnembedding: async () => ({ classifier: weights.classifier, normWeight: weights.rmsFinal }),
		llamaWeights: weights
	};
}

/**
 * An exported decoder after surgery. `blobs` are its weights files where they live, by the path
 * onnxruntime knows each by (`GRAPH_WEIGHTS`: the graph file itself), to be read again for each cut.
 */
function exportSource(opened: Awaited<ReturnType<typeof openExport>>, blobs: Map<string, Blob>, precision?: Precision): ModelSource {
	const { trace, graph, io } = opened.decoder;
	const paths = opened.externalData.map((f) => f.path);
	// The first cut takes the files read at open (nothing is read twice at load); later ones read them again.
	let first = true;
	const readWeights = async (): Promise<WeightFiles> => {
		if (first) {
			first = false;
			const files = opened.externalData;
			opened.dropWeights();
			return files;
		}
		return Promise.all(paths.map(async (path) => ({ path, data: await blobWeights(blobs.get(path)!, path) })));
	};
	let unembedding: Unembedding | null = null;
	return {
		format: 'onnx',
		architecture: trace.architecture,
		dtype: trace.dtype,
		shape: opened.shape,
		parameters: distinctParameterCount(graph, trace.embedding, opened.externalData),
		// Surgery says whether the graph's last output is logits; where it does not say, it is.
		lmHead: (io as DecoderIo & { lmHead?: boolean }).lmHead !== false,
		tokenizer: opened.tokenizer,
		segment: (cuts) => {
			const names = cuts.map((c) => (typeof c === 'number' ? boundaryName(c, trace.nLayers) : c));
			const model = opened.segmentAt(names);
			// The session compares cuts by name: every cut's name, in the order the segments write them.
			return { ...model, cutHooks: model.cutHooks ?? model.segments.flatMap((s) => (s.residualOut ? [s.residualOut] : [])) };
		},
		hooks: offeredHooks(trace),
		readWeights,
		hasUnembedding: unembeddingWeight(opened.decoder) !== null,
		get unembedding() {
			return unembedding;
		},
		loadUnembedding: async () => {
			if (unembedding || !unembeddingWeight(opened.decoder)) return unembedding;
			const files = first ? opened.externalData : await readWeights();
			const found = findUnembedding(opened.decoder, files);
			if (!found) return null;
			// A view into a whole file (read at open, or in a page's main thread) would keep that file alive: copy W_U out.
			const pinsFile = files.some((f) => f.data.buffer === found.classifier.buffer);
			unembedding = { classifier: pinsFile ? found.classifier.slice() : found.classifier, normWeight: null };
			return unembedding;
		},
		manifest: opened.manifest,
		decoder: opened.decoder,
		precision
	};
}

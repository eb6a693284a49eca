/**
 * Opening a model, whichever way it comes: a catalogue entry from the hub (a llama2.c checkpoint, or
 * an exported ONNX decoder in the variant this adapter can run), or files the user picked. What it
 * yields is a ModelSource, everything the session needs of a model; the session starts the runner.
 */
import { LoupeError } from '../errors';
import { readLlama2cCheckpoint } from './llama2c/checkpoint';
import { Llama2cTokenizer } from './llama2c/tokenizer';
import { buildLlamaOnnx } from './llama2c/to-onnx';
import { chosenBackend } from './backend';
import { boundaryName, everyHookName, type HookName } from './hooks';
import { offeredHooks } from './onnx/cut-segments';
import type { Llama2cModel, OnnxModel } from './catalogue';
import type { DecoderIo } from './onnx/decoder-io';
import type { DecoderShape, SegmentedModel } from './segments';
import type { TextTokenizer } from './generate';
import type { HookManifest } from './onnx/hook-manifest';
import { choosePrecision, hubTreeUrl, openExport, parseHubTree, type Precision } from './hf/exported-model';
import { findUnembedding } from './onnx/unembedding';
import { distinctParameterCount } from './parameter-count';
import { deleteCachedFile, fetchModelFile, hubFileUrl, type DownloadProgress, type FetchedFile } from '../store/model-cache';

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
	/** W_U as [vocab, d_model] and the final norm's scale, for feature logits; null where not found. */
	unembedding: { classifier: Float32Array; normWeight: Float32Array | null } | null;
	manifest?: (model: SegmentedModel) => HookManifest;
	precision?: Precision;
}

/**
 * A model whose files are here: `build` makes its source (under the session's lock: parsing a
 * checkpoint is model work); `onFail` forgets cached files that turned out not to parse.
 */
export interface OpenedModel {
	build: () => ModelSource;
	files: FetchedFile[];
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
	onProgress: (p: DownloadProgress) => void
): Promise<OpenedModel> {
	const url = (path: string) => hubFileUrl(hub, entry.repo, entry.revision, path);
	const tree = await fetchModelFile(hubTreeUrl(hub, entry.repo, entry.revision, entry.onnxFolder), onProgress);
	const files = parseHubTree(JSON.parse(new TextDecoder().decode(tree.buffer)));
	const precision = choosePrecision(entry, files, shaderF16);
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
		fetchModelFile(graphUrl, onProgress),
		json('tokenizer.json'),
		json('tokenizer_config.json', true),
		json('config.json', true)
	]);
	const fetched: FetchedFile[] = [graph];
	const opened = await openExport(
		graph.buffer,
		precision.file,
		async (path) => {
			const f = await fetchModelFile(url(`${entry.onnxFolder}/${path}`), onProgress);
			fetched.push(f);
			return f.buffer;
		},
		tokenizerJson,
		tokenizerConfig,
		config
	).catch(async (e) => {
		if (e instanceof LoupeError && e.code === 'not-a-checkpoint') await deleteCachedFile(graphUrl);
		throw e;
	});
	const source = exportSource(opened, { ...precision });
	return { build: () => source, files: fetched };
}

/** A model the user picked from disk: llama2.c files, or an .onnx with its tokenizer files. */
export async function openFiles(picked: File[]): Promise<OpenedModel & { id: string }> {
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
		const opened = await openExport(
			await onnxFile.arrayBuffer(),
			onnxFile.name,
			async (path) => {
				const f = byName.get(path.split('/').pop()!);
				if (!f)
					throw new LoupeError(
						'not-found',
						`${onnxFile.name} keeps its weights in "${path}", which was not chosen with it.`,
						`Choose ${path} together with the .onnx file.`
					);
				return f.arrayBuffer();
			},
			await text('tokenizer.json', true),
			await text('tokenizer_config.json', false),
			await text('config.json', false)
		);
		const source = exportSource(opened);
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
		unembedding: { classifier: weights.classifier, normWeight: weights.rmsFinal }
	};
}

/** An exported decoder after surgery. */
function exportSource(opened: Awaited<ReturnType<typeof openExport>>, precision?: Precision): ModelSource {
	const { trace, graph, io } = opened.decoder;
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
		unembedding: findUnembedding(opened.decoder, opened.externalData),
		manifest: opened.manifest,
		precision
	};
}

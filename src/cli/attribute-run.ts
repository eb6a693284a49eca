/**
 * What `npm run attribute` does, as a function (attribute.ts is the CLI; tests call this in-process):
 * build an attribution graph for a prompt on a llama2.c checkpoint or an exported ONNX decoder
 * (`--model model.onnx`: its weights traced by structure, as the app does; the tokenizer.json
 * beside it or given, or the prompt as `--ids`) and write it as Neuronpedia's graph JSON, unpruned
 * unless `--prune` is given, every node carrying `input` and `bias`.
 *
 * First version: Node, the TypeScript backward passes (the same code the app's CPU path runs; the
 * WGSL path needs a WebGPU device and is checked in tests/gpu). Transcoders: `random:SEED[:WIDTH]`,
 * `default` (the ones the app ships for stories260K) or a folder holding one transcoder folder per
 * layer (SAELens or Gemma Scope 2 files), read by the app's own loader (attribution/transcoder-set.ts).
 */
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import { readLlama2cCheckpoint } from '../lib/engine/model/llama2c/checkpoint';
import { Llama2cTokenizer } from '../lib/engine/model/llama2c/tokenizer';
import { buildGraphJson } from '../lib/engine/attribution/graph-json';
import { HubTokenizer } from '../lib/engine/model/hf/tokenizer';
import { traceDecoderWeights } from '../lib/engine/model/onnx/decoder-weights';
import type { DecoderWeights } from '../lib/engine/attribution/exported-shape';
import { openExportFile } from './open-export-file';
import { randomTranscoders } from '../lib/engine/attribution/random-transcoders';
import { transcodersFromFiles, type PathedFile } from '../lib/engine/attribution/transcoder-set';

/** The transcoders the app ships for stories260K (static/, as the built app serves them). */
const BUNDLED_DIR = 'static/bundled/loupe/stories260K-transcoders/resolve/main';

/** Every file under a folder, with its path inside it (the transcoder loader groups them by folder). */
function filesUnder(root: string, dir = root): PathedFile[] {
	return readdirSync(dir).flatMap((name) => {
		const p = join(dir, name);
		return statSync(p).isDirectory() ? filesUnder(root, p) : [{ path: relative(root, p), file: new Blob([readFileSync(p)]) }];
	});
}

export const usage =
	'usage: npm run attribute -- (--prompt TEXT | --ids 1,2,3) --model stories260K.bin|model.onnx [--tokenizer tok512.bin|tokenizer.json] --out graph.json ' +
	'[--transcoders random:SEED[:WIDTH]|default|DIR] [--max-feature-nodes M] [--prune] [--node-threshold 0.8] [--edge-threshold 0.98] [--max-logits 10] [--logit-prob 0.95] [--batch 64] [--slug NAME]';

export class UsageError extends Error {}

type Tokenizer = { encode(text: string): number[]; decode(ids: number[]): string };

const valued = [
	'--prompt',
	'--ids',
	'--model',
	'--tokenizer',
	'--out',
	'--transcoders',
	'--node-threshold',
	'--edge-threshold',
	'--max-logits',
	'--logit-prob',
	'--batch',
	'--max-feature-nodes',
	'--slug'
];
const flags = ['--prune'];

export interface AttributeSummary {
	out: string;
	tokens: number;
	features: number;
	active: number;
	logits: number;
	nodes: number;
	links: number;
	ms: number;
}

function parse(args: string[]) {
	const o = new Map<string, string>();
	for (let i = 0; i < args.length; i++) {
		const a = args[i];
		if (flags.includes(a)) o.set(a, '1');
		else if (!valued.includes(a)) throw new UsageError(`Unknown option ${a}.`);
		else if (i + 1 >= args.length) throw new UsageError(`${a} needs a value.`);
		else o.set(a, args[++i]);
	}
	for (const need of ['--model', '--out']) if (!o.has(need)) throw new UsageError(`${need} is required.`);
	if (o.has('--prompt') === o.has('--ids')) throw new UsageError('Give the prompt as --prompt TEXT or as --ids 1,2,3 (one of them).');
	const exported = o.get('--model')!.endsWith('.onnx');
	if (!exported && !o.has('--tokenizer')) throw new UsageError('--tokenizer is required for a llama2.c checkpoint (its tok*.bin).');
	const ids = o.has('--ids') ? o.get('--ids')!.split(',').map(Number) : undefined;
	if (ids && (!ids.length || ids.some((id) => !Number.isInteger(id) || id < 0)))
		throw new UsageError(`--ids takes token ids separated by commas; "${o.get('--ids')}" is not that.`);
	const num = (name: string, fallback: number, ok: (v: number) => boolean, what: string) => {
		if (!o.has(name)) return fallback;
		const v = Number(o.get(name));
		if (!Number.isFinite(v) || !ok(v)) throw new UsageError(`${name} takes ${what}; "${o.get(name)}" is not one.`);
		return v;
	};
	const frac = (v: number) => v >= 0 && v <= 1;
	const posInt = (v: number) => Number.isInteger(v) && v > 0;
	const tc = o.get('--transcoders') ?? 'random:1';
	const m = /^random:(\d+)(?::(\d+))?$/.exec(tc);
	// Otherwise a folder of transcoder folders (one per layer, SAELens or Gemma Scope 2), or `default`: the ones the app ships.
	const folder = m ? null : tc === 'default' ? BUNDLED_DIR : tc;
	if (folder && !existsSync(folder))
		throw new UsageError(
			tc === 'default'
				? `--transcoders default: ${BUNDLED_DIR} is not there (run npm run make-defaults, or give a folder).`
				: `--transcoders ${tc}: no such folder; the command line takes only random:SEED[:WIDTH], default, or a folder holding one transcoder folder per layer.`
		);
	return {
		prompt: o.get('--prompt'),
		ids,
		model: o.get('--model')!,
		exported,
		tokenizer: o.get('--tokenizer'),
		out: o.get('--out')!,
		slug: o.get('--slug') ?? 'loupe-graph',
		seed: m ? Number(m[1]) : 0,
		width: m?.[2] ? Number(m[2]) : 24,
		folder,
		prune: o.has('--prune'),
		nodeThreshold: num('--node-threshold', 0.8, frac, 'a number in [0, 1]'),
		edgeThreshold: num('--edge-threshold', 0.98, frac, 'a number in [0, 1]'),
		maxNLogits: num('--max-logits', 10, posInt, 'a positive integer'),
		desiredLogitProb: num('--logit-prob', 0.95, frac, 'a number in [0, 1]'),
		batchSize: num('--batch', 64, posInt, 'a positive integer'),
		maxFeatureNodes: o.has('--max-feature-nodes') ? num('--max-feature-nodes', 0, posInt, 'a positive integer') : undefined
	};
}

const bytes = (path: string) => {
	const b = readFileSync(path);
	return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
};

/** The model's weights as the attribution reads them, and its tokenizer (null: an export given ids only). */
async function openModel(a: ReturnType<typeof parse>): Promise<{ weights: DecoderWeights; tokenizer: Tokenizer | null }> {
	if (!a.exported) {
		const weights = readLlama2cCheckpoint(bytes(a.model), basename(a.model));
		return { weights, tokenizer: new Llama2cTokenizer(bytes(a.tokenizer!), weights.config.vocabSize) };
	}
	const opened = await openExportFile(a.model);
	const weights = traceDecoderWeights(opened.decoder, opened.externalData, { name: basename(a.model) });
	const json = a.tokenizer ?? join(dirname(a.model), 'tokenizer.json');
	if (!existsSync(json)) {
		if (a.tokenizer) throw new UsageError(`--tokenizer ${a.tokenizer}: no such file.`);
		if (!a.ids)
			throw new UsageError(`There is no tokenizer.json beside ${a.model}: give --tokenizer tokenizer.json, or the prompt as --ids.`);
		return { weights, tokenizer: null };
	}
	const beside = (name: string) => {
		const p = join(dirname(json), name);
		return existsSync(p) ? JSON.parse(readFileSync(p, 'utf8')) : {};
	};
	return {
		weights,
		tokenizer: new HubTokenizer(JSON.parse(readFileSync(json, 'utf8')), beside('tokenizer_config.json'), beside('config.json'))
	};
}

export async function runAttribute(args: string[]): Promise<AttributeSummary> {
	const a = parse(args);
	const t0 = performance.now();
	const { weights, tokenizer } = await openModel(a);
	const tokens = a.ids ?? tokenizer!.encode(a.prompt!);
	const bad = tokens.find((id) => id >= weights.config.vocabSize);
	if (bad !== undefined)
		throw new UsageError(`Token id ${bad} is out of range: this model's vocabulary has ids 0 to ${weights.config.vocabSize - 1}.`);
	const transcoders = a.folder
		? (await transcodersFromFiles(filesUnder(a.folder), weights.config.nLayers)).transcoders
		: randomTranscoders(weights.config, a.seed, a.width);
	const { graph, file, json } = await buildGraphJson(weights, tokens, transcoders, {
		maxNLogits: a.maxNLogits,
		desiredLogitProb: a.desiredLogitProb,
		batchSize: a.batchSize,
		maxFeatureNodes: a.maxFeatureNodes,
		slug: a.slug,
		scan: basename(a.model).replace(/\.(bin|onnx)$/, ''),
		prompt: a.prompt ?? tokens.join(','),
		decode: (t) => (tokenizer ? tokenizer.decode([t]) : `#${t}`),
		prune: a.prune ? { nodeThreshold: a.nodeThreshold, edgeThreshold: a.edgeThreshold } : undefined
	});
	writeFileSync(a.out, JSON.stringify(json));
	return {
		out: a.out,
		tokens: tokens.length,
		features: graph.features.length,
		active: graph.nActive,
		logits: graph.logits.length,
		nodes: file.nodes.length,
		links: file.links.length,
		ms: Math.round(performance.now() - t0)
	};
}

/**
 * What `npm run generate` does, as a function (the CLI in generate.ts prints its result; tests call
 * it in-process): open an exported decoder from disk the way the app opens one (open-export-file.ts),
 * cut it at the hooks asked for, and generate from token ids with the app's runner and sampler on
 * onnxruntime-web's wasm EP.
 */
import * as ort from 'onnxruntime-web';
import { SegmentRunner } from '../lib/engine/model/runner';
import { generateIds, type StopReason } from '../lib/engine/model/generate';
import { openExportFile } from './open-export-file';
import type { SamplingSettings } from '../lib/engine/sample/sampler';

export const usage =
	'usage: npm run generate -- model.onnx --ids 1,2,3 --steps N [--cut blocks.L.hook_resid_pre,blocks.L.hook_mlp_out,…] ' +
	'[--temperature T --seed S] [--top-k K] [--top-p P] [--freq-penalty F] [--stop ID,…]';

/** Bad arguments: the CLI prints the message and the usage line. */
export class UsageError extends Error {}

export interface GenerateArgs {
	file: string;
	ids: number[];
	hooks: string[];
	stop: number[];
	sampling: SamplingSettings;
}

const valued = ['--ids', '--steps', '--cut', '--temperature', '--seed', '--top-k', '--top-p', '--freq-penalty', '--stop'];

export function parseGenerateArgs(args: string[]): GenerateArgs {
	const opts = new Map<string, string>();
	const positional: string[] = [];
	for (let i = 0; i < args.length; i++) {
		const a = args[i];
		if (!a.startsWith('--')) positional.push(a);
		else if (!valued.includes(a)) throw new UsageError(`Unknown option ${a}.`);
		else if (i + 1 >= args.length || args[i + 1].startsWith('--')) throw new UsageError(`${a} needs a value.`);
		else opts.set(a, args[++i]);
	}
	if (positional.length !== 1)
		throw new UsageError(positional.length ? `One model file, please (got ${positional.join(', ')}).` : 'Name the model file.');
	const ints = (name: string, text: string) =>
		text.split(',').map((x) => {
			if (!/^\s*\d+\s*$/.test(x)) throw new UsageError(`${name} takes non-negative integers separated by commas; "${x}" is not one.`);
			return Number(x);
		});
	const num = (name: string, fallback: number, ok: (x: number) => boolean, what: string) => {
		const text = opts.get(name);
		if (text === undefined) return fallback;
		const x = Number(text);
		if (!Number.isFinite(x) || !ok(x)) throw new UsageError(`${name} must be ${what}; got "${text}".`);
		return x;
	};
	if (!opts.has('--ids')) throw new UsageError('Give the prompt as token ids: --ids 1,2,3.');
	if (!opts.has('--steps')) throw new UsageError('Say how many tokens to generate: --steps N.');
	return {
		file: positional[0],
		ids: ints('--ids', opts.get('--ids')!),
		hooks: opts.has('--cut')
			? opts
					.get('--cut')!
					.split(',')
					.map((h) => h.trim())
					.filter(Boolean)
			: [],
		stop: opts.has('--stop') ? ints('--stop', opts.get('--stop')!) : [],
		sampling: {
			maxTokens: num('--steps', 0, (x) => Number.isInteger(x) && x >= 1, 'a positive integer'),
			temperature: num('--temperature', 0, (x) => x >= 0, '0 (greedy) or more'),
			seed: num('--seed', 42, (x) => Number.isInteger(x), 'an integer'),
			topK: num('--top-k', 0, (x) => Number.isInteger(x) && x >= 0, 'a non-negative integer (0 = off)'),
			topP: num('--top-p', 1, (x) => x > 0 && x <= 1, 'in (0, 1] (1 = off)'),
			freqPenalty: num('--freq-penalty', 0, (x) => x >= 0, '0 or more')
		}
	};
}

export interface GenerateOutput {
	ids: number[];
	stopReason: StopReason;
}

/** Runs `npm run generate` with these arguments; throws UsageError or an Error with the reason. */
export async function runGenerate(args: string[]): Promise<GenerateOutput> {
	const a = parseGenerateArgs(args);
	const opened = await openExportFile(a.file);
	const { vocabSize } = opened.shape;
	const bad = a.ids.find((id) => id >= vocabSize);
	if (bad !== undefined) throw new Error(`Token id ${bad} is out of range: this model's vocabulary has ids 0 to ${vocabSize - 1}.`);
	const model = opened.segmentAt(a.hooks);

	ort.env.wasm.numThreads = 1;
	ort.env.logLevel = 'error';
	const runner = await SegmentRunner.create(ort, model, 'wasm');
	try {
		const r = await generateIds(runner, null, a.ids, a.sampling, { stopTokens: a.stop });
		return { ids: r.tokens, stopReason: r.stopReason };
	} finally {
		await runner.dispose();
	}
}

// PyTorch as the reference: the four torch.onnx.export decoders in ../shared/fixtures/torch-exports
// (GPT-2, GPT-NeoX, Llama with GQA, Gemma 3 with sliding-window layers and external data), opened
// the way the app opens an export (openExportGraph) and run by the app's runner and generation loop
// on onnxruntime-web's wasm EP, against reference.json, which PyTorch computed with no KV cache:
// greedy ids, last-position logits, and the residual handed across a cut at each hook.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as ort from 'onnxruntime-web';
import { openExportGraph, type OpenedGraph } from '../../src/lib/engine/model/hf/exported-model';
import { offeredHooks } from '../../src/lib/engine/model/onnx/cut-segments';
import { SegmentRunner } from '../../src/lib/engine/model/runner';
import { generateIds, lastRowLogits } from '../../src/lib/engine/model/generate';
import { fixturesDir } from '../fixtures';
import { flat, maxAbsDiff } from '../numeric';

ort.env.wasm.numThreads = 1;
ort.env.logLevel = 'error';

interface Reference {
	n_layers: number;
	d_model: number;
	vocab_size: number;
	greedy_steps: number;
	hooks_prompt_index: number;
	prompts: { input_ids: number[]; greedy: number[]; last_logits: number[]; hooks?: Record<string, number[][]> }[];
}

const torchExportsDir = resolve(fixturesDir, 'torch-exports');
const greedy = (steps: number) => ({ temperature: 0, topP: 1, topK: 0, freqPenalty: 0, maxTokens: steps, seed: 0 });

/** Opens one torch export from its folder as the app opens local files (weights by the names the graph gives). */
async function openTorchExport(name: string): Promise<{ opened: OpenedGraph; ref: Reference }> {
	const dir = join(torchExportsDir, name);
	const ref = JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8')) as Reference;
	const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
	const opened = await openExportGraph(
		new Uint8Array(readFileSync(join(dir, 'model.onnx'))),
		'model.onnx',
		async (path) => new Uint8Array(readFileSync(join(dir, path))),
		config
	);
	return { opened, ref };
}

describe.each(['gpt2', 'gptneox', 'llama', 'gemma3'])('%s (torch.onnx.export) against PyTorch, on wasm', (name) => {
	let opened: OpenedGraph;
	let ref: Reference;
	let uncut: SegmentRunner;
	beforeAll(async () => {
		({ opened, ref } = await openTorchExport(name));
		uncut = await SegmentRunner.create(ort, opened.segment([]), 'wasm');
	});
	afterAll(async () => {
		await uncut?.dispose();
	});

	it('has the shape reference.json gives', () => {
		expect(opened.shape).toMatchObject({ nLayers: ref.n_layers, dModel: ref.d_model, vocabSize: ref.vocab_size });
	});

	it("every prompt's greedy ids equal PyTorch's (12 steps, KV cache)", async () => {
		for (const p of ref.prompts) {
			const r = await generateIds(uncut, null, p.input_ids, greedy(ref.greedy_steps));
			expect(r.tokens, `prompt ${JSON.stringify(p.input_ids)}`).toEqual(p.greedy);
		}
	});

	it("every prompt's last-position logits match PyTorch's", async () => {
		let worst = 0;
		for (const p of ref.prompts) {
			uncut.reset();
			const { logits, rows } = await uncut.forward(p.input_ids);
			worst = Math.max(worst, maxAbsDiff(lastRowLogits(logits, rows, ref.vocab_size), p.last_logits));
			logits.dispose();
		}
		console.log(`${name}: last-position logits, max abs error vs PyTorch ${worst.toExponential(2)}`);
		expect(worst).toBeLessThan(1e-4);
	});

	it("the residual handed across a cut at every hook reference.json has and the decoder offers equals PyTorch's", async () => {
		const p = ref.prompts[ref.hooks_prompt_index];
		const expected = p.hooks!;
		const offered = new Set(offeredHooks(opened.decoder.trace));
		// The residual stream's hooks must all be offered: every resid_pre and the last resid_post.
		const resid = [
			...Array.from({ length: ref.n_layers }, (_, l) => `blocks.${l}.hook_resid_pre`),
			`blocks.${ref.n_layers - 1}.hook_resid_post`
		];
		for (const h of resid) expect(offered.has(h), `${h} is offered`).toBe(true);
		const hooks = Object.keys(expected).filter((h) => offered.has(h));
		const missing = Object.keys(expected).filter((h) => !offered.has(h));
		const runner = await SegmentRunner.create(ort, opened.segmentAt(hooks), 'wasm');
		const errors: Record<string, number> = {};
		try {
			const { logits } = await runner.forward(p.input_ids, (hook, residual, rows) => {
				expect(rows).toBe(p.input_ids.length);
				const want = flat(expected[hook]);
				errors[hook] = maxAbsDiff(residual.data as Float32Array, want);
			});
			logits.dispose();
		} finally {
			await runner.dispose();
		}
		const worst = Math.max(...Object.values(errors));
		console.log(
			`${name}: residual at ${hooks.length} hooks, max abs error vs PyTorch ${worst.toExponential(2)}` +
				` (${Object.entries(errors)
					.map(([h, e]) => `${h} ${e.toExponential(1)}`)
					.join(', ')})` +
				(missing.length ? `; reference hooks the decoder does not offer yet: ${missing.join(', ')}` : '')
		);
		expect(Object.keys(errors).sort()).toEqual([...hooks].sort());
		expect(worst).toBeLessThan(1e-4);
	});

	if (name === 'gemma3')
		it("the sliding window (4) holds past its length when cut at four hooks (two inside layers): greedy ids still equal PyTorch's", async () => {
			// 9 prompt tokens + 12 steps: 21 positions, five times the window of layers 0–4.
			const hooks = ['blocks.1.hook_resid_pre', 'blocks.2.hook_attn_out', 'blocks.4.hook_mlp_in', 'blocks.5.hook_resid_post'];
			const runner = await SegmentRunner.create(ort, opened.segmentAt(hooks), 'wasm');
			try {
				for (const p of ref.prompts) {
					const r = await generateIds(runner, null, p.input_ids, greedy(ref.greedy_steps));
					expect(r.tokens, `prompt ${JSON.stringify(p.input_ids)}`).toEqual(p.greedy);
				}
			} finally {
				await runner.dispose();
			}
		});
});

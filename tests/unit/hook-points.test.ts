// The hooks inside the layers (blocks.L.hook_attn_out, hook_mlp_in, hook_mlp_out), as graph surgery
// finds them in exports Loupe did not write, checked against things Loupe did not compute:
//  - the four torch.onnx.export decoders: the tensor handed across a cut at every offered hook equals
//    PyTorch's (reference.json, the 9-token prompt, no KV cache);
//  - the fully cut chain's logits equal the unmodified graph's (one onnxruntime session on the
//    original bytes), prompt and cached steps;
//  - adding v between segments at a hook equals an Add inserted into the unmodified graph at that
//    tensor, every reader rewired (protobuf edits only, no surgery code; one session holds such an Add
//    at every hook's tensor, each switched on alone: gated-adds.ts);
//  - the same on onnxruntime-fused exports (SkipLayerNormalization with the projection bias inside,
//    model-builder fp16 Llama), where the reference tensor is read from the unmodified graph.
import './liftoff-only';
import { beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as ort from 'onnxruntime-web';
import { decodeModel } from '../../src/lib/engine/model/onnx/graph';
import { openExportedDecoder, hookManifest, type ExportedDecoder, type HookManifest } from '../../src/lib/engine/model/onnx/hook-manifest';
import { fromHalf } from '../../src/lib/engine/model/onnx/half';
import { canonicalHook, parseHook } from '../../src/lib/engine/model/hooks';
import { SegmentRunner } from '../../src/lib/engine/model/runner';
import { fixturesDir } from '../fixtures';
import { addInPlace, runWhole, segmentedAt, values, withAdd, type External } from '../graph-checks';
import { flat, maxAbsDiff } from '../numeric';
import { gatedAddSession, graphSession } from './gated-adds';

ort.env.wasm.numThreads = 1;
ort.env.logLevel = 'error';

const kindOf = (hook: string) => {
	const k = parseHook(hook)!.kind;
	return k === 'resid_pre' || k === 'resid_post' ? 'resid' : k;
};

/** Max error per hook kind, for the test output. */
function byKind(errors: Record<string, number>): Record<string, string> {
	const out: Record<string, number> = {};
	for (const [h, e] of Object.entries(errors)) out[kindOf(h)] = Math.max(out[kindOf(h)] ?? 0, e);
	return Object.fromEntries(Object.entries(out).map(([k, e]) => [k, e.toExponential(2)]));
}

interface Reference {
	n_layers: number;
	d_model: number;
	hooks_prompt_index: number;
	prompts: { input_ids: number[]; last_logits: number[]; hooks?: Record<string, number[][]> }[];
}

const torchDir = resolve(fixturesDir, 'torch-exports');

describe.each(['gpt2', 'gptneox', 'llama', 'gemma3'])('%s (torch.onnx.export): hooks inside the layers against PyTorch', (name) => {
	const dir = join(torchDir, name);
	const bytes = new Uint8Array(readFileSync(join(dir, 'model.onnx')));
	const externalData: External =
		name === 'gemma3' ? [{ path: 'model.onnx_data', data: new Uint8Array(readFileSync(join(dir, 'model.onnx_data'))) }] : undefined;
	const ref = JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8')) as Reference;
	const prompt = ref.prompts[ref.hooks_prompt_index];
	const expected = prompt.hooks!;
	let d: ExportedDecoder;
	let m: HookManifest;
	let runner: SegmentRunner;
	let whole: Awaited<ReturnType<typeof graphSession>>; // the unmodified graph, one session for every case
	let wholeLogits: Float32Array;
	beforeAll(async () => {
		d = openExportedDecoder(bytes);
		m = hookManifest(d, []);
		runner = await SegmentRunner.create(ort, segmentedAt(d, m.hookNames, externalData), 'wasm');
		whole = await graphSession(d, bytes, externalData);
		wholeLogits = values((await whole.run(prompt.input_ids))[d.io.logits]);
		return async () => {
			await runner.dispose();
			await whole.release();
		};
	}, 120_000);

	it('offers every hook reference.json has, and nothing is missing', () => {
		expect(m.hookNames).toEqual(expect.arrayContaining(Object.keys(expected)));
		expect(Object.keys(m.sublayerHooks)).toHaveLength(3 * ref.n_layers);
		expect(m.warnings.filter((w) => w.includes('not offered'))).toEqual([]);
	});

	it('cut at every offered hook: each hook equals PyTorch, the logits equal the unmodified graph', async () => {
		const got: Record<string, Float32Array> = {};
		runner.reset();
		const { logits } = await runner.forward(prompt.input_ids, (hook, residual) => void (got[hook] = values(residual)));
		const cutLogits = values(logits);
		logits.dispose();
		const errors: Record<string, number> = {};
		for (const [hook, rows] of Object.entries(expected)) errors[hook] = maxAbsDiff(got[canonicalHook(hook, ref.n_layers)], flat(rows));
		const logitDiff = maxAbsDiff(cutLogits, wholeLogits);
		console.log(
			`${name}: ${m.hookNames.length} hooks cut (${runner.model.segments.length} segments); max abs error vs PyTorch by kind ${JSON.stringify(byKind(errors))}; logits cut vs unmodified ${logitDiff.toExponential(2)}`
		);
		for (const [hook, e] of Object.entries(errors)) expect(e, hook).toBeLessThan(1e-4);
		expect(logitDiff).toBeLessThan(1e-5);
	});

	it('cached steps through the fully cut chain equal one uncached forward of the unmodified graph', async () => {
		const next = [3, 11];
		const all = [...prompt.input_ids, ...next];
		const uncached = values((await whole.run(all))[d.io.logits]);
		const V = d.trace.vocabSize;
		runner.reset();
		let worst = 0;
		let pos = 0;
		for (const chunk of [prompt.input_ids, ...next.map((t) => [t])]) {
			const { logits, rows } = await runner.forward(chunk);
			worst = Math.max(worst, maxAbsDiff(values(logits), uncached.subarray(pos * V, (pos + rows) * V)));
			logits.dispose();
			pos += rows;
		}
		console.log(`${name}: cut at every hook, prompt then 2 cached steps vs uncached unmodified graph: ${worst.toExponential(2)}`);
		expect(worst).toBeLessThan(1e-4);
	});

	it(
		'adding v between segments at each hook inside a layer equals an Add inserted into the unmodified graph there',
		{ timeout: 240_000 },
		async () => {
			const v = Float32Array.from({ length: ref.d_model }, (_, i) => Math.sin(1.7 * i + 0.3));
			const errors: Record<string, number> = {};
			let smallestChange = Infinity;
			const hooks = Object.keys(m.sublayerHooks);
			// One session holds an Add at every hook's tensor, each switched on alone (gated-adds.ts).
			const edited = await gatedAddSession(
				d,
				bytes,
				externalData,
				hooks.map((h) => m.sublayerHooks[h].tensor),
				v,
				false,
				prompt.input_ids
			);
			try {
				for (const hook of hooks) {
					runner.reset();
					const { logits } = await runner.forward(prompt.input_ids, (h, residual) => {
						if (h === hook) addInPlace(residual, v);
					});
					const steered = values(logits);
					logits.dispose();
					const want = values(await edited.run(m.sublayerHooks[hook].tensor));
					errors[hook] = maxAbsDiff(steered, want);
					smallestChange = Math.min(smallestChange, maxAbsDiff(want, wholeLogits));
				}
			} finally {
				await edited.release();
			}
			console.log(
				`${name}: steering at ${Object.keys(errors).length} hooks, max |cut − inserted Add| by kind ${JSON.stringify(byKind(errors))}; smallest logit change ${smallestChange.toExponential(2)}`
			);
			for (const [hook, e] of Object.entries(errors)) expect(e, hook).toBeLessThan(1e-4);
			// v does change the output at every hook, so the comparison above could fail.
			expect(smallestChange).toBeGreaterThan(1e-3);
		}
	);
});

// onnxruntime-fused exports: no PyTorch reference, so each hook is compared with the unmodified
// graph's own tensor (for a bias fused into SkipLayerNormalization, its operand plus that bias).
const exportsDir = resolve(fixturesDir, 'onnx-exports');
describe.each([
	{ file: 'gpt2_ort_fused_past.onnx', fp16: false, tol: 1e-5, split: 10 },
	{ file: 'llama_modelbuilder_fp16/model.onnx', fp16: true, tol: 4e-3, split: 0, data: 'llama_modelbuilder_fp16/model.onnx.data' }
])('$file: hooks inside the layers of a fused export', (f) => {
	const bytes = new Uint8Array(readFileSync(join(exportsDir, f.file)));
	const externalData: External = f.data
		? [{ path: 'model.onnx.data', data: new Uint8Array(readFileSync(join(exportsDir, f.data))) }]
		: undefined;
	const ids = [5, 17, 3, 250, 9, 1, 77];
	let d: ExportedDecoder;
	let m: HookManifest;

	beforeAll(() => {
		d = openExportedDecoder(bytes);
		m = hookManifest(d, []);
	});

	it('offers attn_out, mlp_in and mlp_out at every layer (splitting out fused biases where needed)', () => {
		expect(Object.keys(m.sublayerHooks)).toHaveLength(3 * d.trace.nLayers);
		expect(Object.values(d.trace.sites).filter((s) => s.split)).toHaveLength(f.split);
	});

	it(
		"cut at every hook: each hook equals the unmodified graph's tensor, logits equal, and an added v equals an inserted Add",
		{ timeout: 120_000 },
		async () => {
			const { trace } = d;
			const sites = trace.sites;
			// The reference for a split site is its operand (the bias is added below from the initializer).
			const refTensor = (hook: string) => sites[hook].split?.operand ?? sites[hook].tensor;
			const initializer = (name: string) => {
				const t = decodeModel(bytes).graph!.initializer!.find((i) => i.name === name)!;
				return t.rawData?.length
					? t.dataType === 10
						? Float32Array.from(new Uint16Array(t.rawData.slice().buffer), fromHalf)
						: new Float32Array(t.rawData.slice().buffer)
					: Float32Array.from(t.floatData!);
			};
			const probe = await runWhole(
				d,
				withAdd(bytes, null, new Float32Array(0), f.fp16, Object.keys(sites).map(refTensor)),
				externalData,
				ids
			);
			const runner = await SegmentRunner.create(ort, segmentedAt(d, m.hookNames, externalData), 'wasm');
			try {
				const got: Record<string, Float32Array> = {};
				const { logits } = await runner.forward(ids, (hook, residual) => void (got[hook] = values(residual)));
				const logitDiff = maxAbsDiff(values(logits), values(probe[d.io.logits]));
				logits.dispose();
				const errors: Record<string, number> = {};
				for (const hook of Object.keys(sites)) {
					const want = values(probe[refTensor(hook)]);
					const bias = sites[hook].split ? initializer(sites[hook].split!.bias) : null;
					if (bias) for (let i = 0; i < want.length; i++) want[i] += bias[i % bias.length];
					errors[hook] = maxAbsDiff(got[hook], want);
				}
				const v = Float32Array.from({ length: trace.dModel }, (_, i) => 0.5 * Math.cos(0.9 * i));
				const steerErrors: Record<string, number> = {};
				let smallestChange = Infinity;
				const whole = values(probe[d.io.logits]);
				// One session holds an Add at every hook's tensor, each switched on alone (gated-adds.ts).
				const edited = await gatedAddSession(d, bytes, externalData, Object.keys(sites).map(refTensor), v, f.fp16, ids);
				try {
					for (const hook of Object.keys(sites)) {
						runner.reset();
						const out = await runner.forward(ids, (h, residual) => {
							if (h === hook) addInPlace(residual, v);
						});
						const steered = values(out.logits);
						out.logits.dispose();
						const want = values(await edited.run(refTensor(hook)));
						steerErrors[hook] = maxAbsDiff(steered, want);
						smallestChange = Math.min(smallestChange, maxAbsDiff(want, whole));
					}
				} finally {
					await edited.release();
				}
				console.log(
					`${f.file}: hooks vs unmodified graph by kind ${JSON.stringify(byKind(errors))}; logits ${logitDiff.toExponential(2)}; steering |cut − inserted Add| by kind ${JSON.stringify(byKind(steerErrors))}, smallest change ${smallestChange.toExponential(2)}`
				);
				for (const [hook, e] of Object.entries(errors)) expect(e, hook).toBeLessThanOrEqual(f.tol);
				expect(logitDiff).toBeLessThanOrEqual(f.tol);
				for (const [hook, e] of Object.entries(steerErrors)) expect(e, hook).toBeLessThanOrEqual(f.tol);
				expect(smallestChange).toBeGreaterThan(1e-3);
			} finally {
				await runner.dispose();
			}
		}
	);
});

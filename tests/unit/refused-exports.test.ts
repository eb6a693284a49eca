// Exports surgery used to refuse or never saw, written by Loupe's builder in the shapes recent
// exporters produce (tiny-decoders.ts style 'opset23'): the standard opset-23 `Attention`,
// `RMSNormalization` and `RotaryEmbedding` ops, token ids that reach the embedding through Cast,
// Unsqueeze, Squeeze, Reshape and Flatten (torch's `input_ids.view(-1, S)`), and base models with no
// LM head (the output is the final norm's hidden state). onnxruntime-web 1.30 runs all three ops on
// wasm, so each is checked against the unmodified graph: cut at every hook, a prompt and cached
// steps equal one uncached forward; adding v at each hook equals an Add inserted there.
import { describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-web';
import { buildTinyDecoder, type TinyArch } from '../../src/lib/engine/model/onnx/tiny-decoders';
import { openExportedDecoder, cutExportedDecoder, hookManifest } from '../../src/lib/engine/model/onnx/hook-manifest';
import { decodeModel } from '../../src/lib/engine/model/onnx/graph';
import { GraphBuilder } from '../../src/lib/engine/model/onnx/graph-builder';
import { SegmentRunner } from '../../src/lib/engine/model/runner';
import { maxAbsDiff } from '../numeric';
import { addInPlace, runWhole, segmentedAt, values, withAdd } from '../graph-checks';

ort.env.wasm.numThreads = 1;
ort.env.logLevel = 'error';

const L = 3;
const D = 16;
const prompt = [1, 7, 30, 4, 22];
const steps = [9, 41];

describe.each([
	{ arch: 'gpt2', lmHead: true },
	{ arch: 'llama', lmHead: true },
	{ arch: 'gemma', lmHead: true },
	{ arch: 'llama', lmHead: false },
	{ arch: 'gemma', lmHead: false }
] as { arch: TinyArch; lmHead: boolean }[])('a $arch decoder in opset-23 standard ops (LM head: $lmHead)', ({ arch, lmHead }) => {
	const bytes = buildTinyDecoder({ arch, style: 'opset23', layers: L, dModel: D, heads: 2, vocab: 64, lmHead });
	const ops = new Set(decodeModel(bytes).graph!.node!.map((n) => n.opType));

	it('is what it says: Attention, the norm op, RotaryEmbedding where the model has RoPE, ids through shape ops', () => {
		expect(ops.has('Attention')).toBe(true);
		expect(ops.has(arch === 'gpt2' ? 'LayerNormalization' : 'RMSNormalization')).toBe(true);
		expect(ops.has('RotaryEmbedding')).toBe(arch !== 'gpt2');
		for (const op of ['Cast', 'Unsqueeze', 'Squeeze', 'Reshape', 'Flatten']) expect(ops.has(op), op).toBe(true);
	});

	it('opens: layers, width, the architecture (RMSNormalization is not LayerNorm), every hook, the KV pairs', () => {
		const d = openExportedDecoder(bytes);
		expect(d.trace).toMatchObject({ nLayers: L, dModel: D, vocabSize: 64, architecture: arch, addsPerLayer: [2, 2, 2] });
		const m = hookManifest(d, []);
		expect(Object.keys(m.sublayerHooks)).toHaveLength(3 * L);
		expect(m.hookNames).toHaveLength(5 * L);
		expect(m.warnings).toEqual([]);
		expect(d.io.kv.map((p) => [p.past, p.present])).toEqual(
			Array.from({ length: L }, (_, l) => [
				[`past_key_values.${l}.key`, `present.${l}.key`],
				[`past_key_values.${l}.value`, `present.${l}.value`]
			]).flat()
		);
		if (!lmHead) expect(d.io.logits).toBe('last_hidden_state');
	});

	it('cut at every hook: the prompt and cached steps equal one uncached forward of the unmodified graph', async () => {
		const d = openExportedDecoder(bytes);
		const m = hookManifest(d, []);
		const out = d.io.logits;
		const width = lmHead ? 64 : D;
		const whole = values((await runWhole(d, bytes, undefined, [...prompt, ...steps]))[out]);
		const runner = await SegmentRunner.create(ort, segmentedAt(d, m.hookNames, undefined), 'wasm');
		let worst = 0;
		let pos = 0;
		try {
			for (const chunk of [prompt, ...steps.map((t) => [t])]) {
				const r = await runner.forward(chunk);
				worst = Math.max(worst, maxAbsDiff(values(r.logits), whole.subarray(pos * width, (pos + chunk.length) * width)));
				r.logits.dispose();
				pos += chunk.length;
			}
		} finally {
			await runner.dispose();
		}
		console.log(
			`opset-23 ${arch}${lmHead ? '' : ' (no LM head)'}: ${m.hookNames.length} hooks cut, cached chain vs uncached unmodified graph ${worst.toExponential(2)}`
		);
		expect(worst).toBeLessThan(1e-5);
	});

	it('adding v at each hook between segments equals an Add inserted into the unmodified graph there', async () => {
		const d = openExportedDecoder(bytes);
		const m = hookManifest(d, []);
		const v = Float32Array.from({ length: D }, (_, i) => Math.cos(1.3 * i));
		const plain = values((await runWhole(d, bytes, undefined, prompt))[d.io.logits]);
		const runner = await SegmentRunner.create(ort, segmentedAt(d, m.hookNames, undefined), 'wasm');
		const errors: number[] = [];
		let smallestChange = Infinity;
		try {
			for (const hook of m.hookNames) {
				if (hook.endsWith('resid_post') && hook !== `blocks.${L - 1}.hook_resid_post`) continue; // resid_post L is resid_pre L+1
				const tensor = (m.hooks[hook] ?? m.sublayerHooks[hook]).tensor;
				runner.reset();
				const r = await runner.forward(prompt, (h, residual) => {
					if (h === hook) addInPlace(residual, v);
				});
				const steered = values(r.logits);
				r.logits.dispose();
				const edited = values((await runWhole(d, withAdd(bytes, tensor, v, false), undefined, prompt))[d.io.logits]);
				errors.push(maxAbsDiff(steered, edited));
				smallestChange = Math.min(smallestChange, maxAbsDiff(edited, plain));
			}
		} finally {
			await runner.dispose();
		}
		console.log(
			`opset-23 ${arch}${lmHead ? '' : ' (no LM head)'}: steering at ${errors.length} hooks, max |cut − inserted Add| ${Math.max(...errors).toExponential(2)}, smallest change ${smallestChange.toExponential(2)}`
		);
		expect(Math.max(...errors)).toBeLessThan(1e-5);
		expect(smallestChange).toBeGreaterThan(1e-3);
	});
});

describe('cuts at hooks, in graph order, and the names surgery refuses', () => {
	const d = openExportedDecoder(buildTinyDecoder({ arch: 'llama', style: 'unfused', layers: L, dModel: D }));
	it('a cut at blocks.1.hook_mlp_in sits between resid_pre 1 and resid_post 1, whatever order they are asked in', () => {
		const segs = cutExportedDecoder(d, ['blocks.1.hook_resid_post', 'blocks.1.hook_mlp_in', 'blocks.1.hook_resid_pre']);
		expect(segs.map((s) => s.residualOut)).toEqual([
			'blocks.1.hook_resid_pre',
			'blocks.1.hook_mlp_in',
			'blocks.2.hook_resid_pre',
			undefined
		]);
		expect(segs.map((s) => s.layers)).toEqual([
			[0, 1],
			[1, 2],
			[1, 2],
			[2, 3]
		]);
	});
	it('a hook the model does not have: the names it does', () => {
		expect(() => cutExportedDecoder(d, ['blocks.7.hook_mlp_in'])).toThrow(
			/no hook point "blocks\.7\.hook_mlp_in" in this 3-layer model.*attn_out, mlp_in, mlp_out/
		);
		expect(() => cutExportedDecoder(d, ['blocks.0.hook_attn_z'])).toThrow(/no hook point/);
	});
});

/**
 * One parallel block (GPT-NeoX style: attention and MLP both read the layer input) whose sum's bias
 * onnxruntime would fuse into SkipLayerNormalization: the bias belongs to one of the two outputs and
 * the graph does not say which, so attn_out and mlp_out are not tensors anywhere.
 */
function parallelBlockWithFusedBias(): Uint8Array {
	const g = new GraphBuilder('parallel-fused-bias');
	const ones = (n: number, k = 0.1) => Float32Array.from({ length: n }, (_, i) => 1 + k * Math.sin(i));
	const mat = (r: number, c: number) =>
		g.weight(
			'/w',
			Float32Array.from({ length: r * c }, (_, i) => 0.1 * Math.cos(i)),
			[r, c]
		);
	const ids = g.input('input_ids', 'int64', ['batch', 'seq']);
	const x = g.op('Gather', [mat(64, D), ids], { axis: 0 });
	const ln = (t: string) => g.op('LayerNormalization', [t, g.weight('/g', ones(D), [D]), g.weight('/b', ones(D, 0), [D])], { axis: -1 });
	const xa = ln(x);
	const scores = g.op('MatMul', [
		g.op('MatMul', [xa, mat(D, D)]),
		g.op('Transpose', [g.op('MatMul', [xa, mat(D, D)])], { perm: [0, 2, 1] })
	]);
	const attn = g.op('MatMul', [g.op('MatMul', [g.op('Softmax', [scores], { axis: -1 }), g.op('MatMul', [xa, mat(D, D)])]), mat(D, D)]);
	const mlp = g.op('MatMul', [g.op('Relu', [g.op('MatMul', [ln(x), mat(D, 2 * D)])]), mat(2 * D, D)]);
	const normed = g.fresh('/final/normed');
	g.node(
		'SkipLayerNormalization',
		[x, g.op('Add', [attn, mlp]), g.weight('/g', ones(D), [D]), g.weight('/b', ones(D, 0), [D]), g.weight('/bias', ones(D), [D])],
		[normed, '', '', g.fresh('/final/sum')],
		{ epsilon: { float: 1e-5 } },
		'com.microsoft'
	);
	g.alias(g.op('MatMul', [normed, mat(D, 64)]), 'logits');
	g.output('logits', 'float32', ['batch', 'seq', 64]);
	return g.toBytes(17);
}

describe('a hook surgery cannot find is left out, with the reason, and a cut there is refused', () => {
	const d = openExportedDecoder(parallelBlockWithFusedBias());
	const m = hookManifest(d, []);
	it('the manifest offers mlp_in but not attn_out / mlp_out, and says why', () => {
		expect(d.trace).toMatchObject({ nLayers: 1, architecture: 'gpt-neox' });
		expect(Object.keys(m.sublayerHooks)).toEqual(['blocks.0.hook_mlp_in']);
		expect(m.hookNames).toEqual(['blocks.0.hook_resid_pre', 'blocks.0.hook_mlp_in', 'blocks.0.hook_resid_post']);
		expect(m.warnings.join(' ')).toMatch(/blocks\.0\.hook_attn_out: the parallel block's bias is added inside SkipLayerNormalization/);
		expect(m.warnings.join(' ')).toMatch(/blocks\.0\.hook_mlp_out: /);
	});
	it('cutting at attn_out names the reason and the hooks there are', () => {
		expect(() => cutExportedDecoder(d, ['blocks.0.hook_attn_out'])).toThrow(
			/no tensor Loupe can cut at for blocks\.0\.hook_attn_out \(the parallel block's bias is added inside SkipLayerNormalization.*\); pick one of the hooks it offers: blocks\.0\.hook_resid_pre, blocks\.0\.hook_mlp_in, blocks\.0\.hook_resid_post/
		);
	});
});

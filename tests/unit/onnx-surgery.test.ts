// Graph surgery on real exports (../shared/fixtures/onnx-exports, as their tools wrote them) and on
// the project's own llama2.c graph: the residual is traced by structure, every hook is found, and the
// segmented model computes what the unmodified graph computes (onnxruntime-web, wasm, in Node).
import { LIFTOFF_ONLY } from './liftoff-only';
import { describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import * as ort from 'onnxruntime-web';
import onnxProto from 'onnx-proto';
import { openExportedDecoder, cutExportedDecoder, hookManifest } from '../../src/lib/engine/model/onnx/hook-manifest';
import { verifySurgery } from '../../src/lib/engine/model/onnx/verify';
import { allHookNames } from '../../src/lib/engine/model/hooks';
import { readLlama2cCheckpoint } from '../../src/lib/engine/model/llama2c/checkpoint';
import { buildLlamaOnnx } from '../../src/lib/engine/model/llama2c/to-onnx';
import { buildTinyDecoder } from '../../src/lib/engine/model/onnx/tiny-decoders';
import { fixturesDir, readArrayBuffer, repoRoot, stories260KDir } from '../fixtures';

ort.env.wasm.numThreads = 1;
ort.env.logLevel = 'error';
const exportsDir = resolve(fixturesDir, 'onnx-exports');
const read = (p: string) => new Uint8Array(readFileSync(resolve(exportsDir, p)));

// Layer counts and widths as the fixtures' README states them (not as the tracer finds them).
const fixtures = [
	{ file: 'gpt2_megatron_torch_unfused.onnx', layers: 1, dModel: 8, vocab: 10, arch: 'gpt2', dtype: 'float32', tol: 1e-5, kv: 'stacked' },
	{ file: 'gpt2_ort_fused_past.onnx', layers: 5, dModel: 32, vocab: 1000, arch: 'gpt2', dtype: 'float32', tol: 1e-5, kv: 'stacked' },
	{
		file: 'llama_modelbuilder_fp16/model.onnx',
		layers: 2,
		dModel: 16,
		vocab: 32000,
		arch: 'llama',
		dtype: 'float16',
		tol: 2e-3,
		kv: 'separate',
		data: 'llama_modelbuilder_fp16/model.onnx.data'
	}
];

describe.each(fixtures)('graph surgery on $file', (f) => {
	const bytes = read(f.file);
	const externalData = f.data ? [{ path: 'model.onnx.data', data: read(f.data) }] : undefined;

	it('finds the residual stream at every hook point', () => {
		const d = openExportedDecoder(bytes);
		const m = hookManifest(d, cutExportedDecoder(d, allHookNames(d.trace.nLayers)));
		expect(m).toMatchObject({ nLayers: f.layers, dModel: f.dModel, vocabSize: f.vocab, architecture: f.arch, dtype: f.dtype });
		expect(Object.keys(m.hooks).sort()).toEqual(allHookNames(f.layers).sort());
		expect(m.kvCache.layout).toBe(f.kv);
		expect(m.kvCache.pairs).toHaveLength(f.kv === 'stacked' ? f.layers : 2 * f.layers);
		// One segment after each boundary: embedding, each layer, final norm + unembedding.
		expect(m.segments).toHaveLength(f.layers + 2);
		expect(m.segments.at(-1)!.outputs).toContain(m.io.logits);
	});

	it('the segmented model equals the original: logits with KV cache, residual at each hook, an added vector', async () => {
		const r = await verifySurgery(ort, bytes, { externalData, sequences: 2, steps: 3 });
		expect(r.maxAbsLogitDiff).toBeLessThanOrEqual(f.tol);
		expect(r.cutAtOne.maxAbsLogitDiff).toBeLessThanOrEqual(f.tol);
		expect(Object.keys(r.maxAbsResidualDiff)).toHaveLength(f.layers + 1);
		for (const d of Object.values(r.maxAbsResidualDiff)) expect(d).toBeLessThanOrEqual(f.tol);
		// Adding v between segments = inserting an Add at that tensor in the unmodified graph…
		expect(r.steering!.maxAbsLogitDiff).toBeLessThanOrEqual(f.tol);
		// …the next layer reads resid + v (fp16 rounds v to its own precision)…
		expect(r.steering!.maxAbsInputDiff).toBeLessThanOrEqual(f.dtype === 'float16' ? 2e-3 : 1e-6);
		// …and v does change the output, so the comparisons above could fail.
		expect(r.steering!.logitChange).toBeGreaterThan(0.05);
	});
});

describe("graph surgery on Loupe's own llama2.c graph (unfused Llama, fp32)", () => {
	const weights = readLlama2cCheckpoint(readArrayBuffer(`${stories260KDir}/stories260K.bin`), 'stories260K.bin');
	const whole = buildLlamaOnnx(weights).segments[0].bytes;
	it('traces 5 layers of width 64 and matches when cut', async () => {
		const d = openExportedDecoder(whole);
		expect(d.trace).toMatchObject({ nLayers: 5, dModel: 64, vocabSize: 512, architecture: 'llama' });
		expect(d.trace.addsPerLayer).toEqual([2, 2, 2, 2, 2]);
		const r = await verifySurgery(ort, whole, { sequences: 1, steps: 2 });
		expect(r.maxAbsLogitDiff).toBeLessThanOrEqual(1e-5);
		expect(r.steering!.maxAbsLogitDiff).toBeLessThanOrEqual(1e-5);
		expect(r.steering!.logitChange).toBeGreaterThan(0.05);
	});
});

describe('what surgery refuses, with the reason', () => {
	const { onnx } = onnxProto;
	const graphWith = (nodes: onnxProto.onnx.INodeProto[], inputs: string[]) =>
		onnx.ModelProto.encode({
			irVersion: 8,
			opsetImport: [{ domain: '', version: 17 }],
			graph: {
				name: 'g',
				node: nodes,
				input: inputs.map((name) => ({
					name,
					type: { tensorType: { elemType: name === 'x' ? 1 : 7, shape: { dim: [{ dimParam: 'b' }, { dimParam: 's' }] } } }
				})),
				output: [{ name: 'y', type: { tensorType: { elemType: 1 } } }],
				initializer: [{ name: 'W', dataType: 1, dims: [4, 4], floatData: new Array(16).fill(0.5) }]
			}
		}).finish();

	it('a merged decoder (If on use_cache_branch): pick the plain export', () => {
		const bytes = graphWith(
			[{ opType: 'If', input: ['use_cache_branch'], output: ['y'], name: 'optimum::if' }],
			['input_ids', 'use_cache_branch']
		);
		expect(() => openExportedDecoder(bytes)).toThrow(/merged decoder.*decoder_model\.onnx/);
	});
	it('a graph with no residual stream', () => {
		const bytes = graphWith(
			[
				{ opType: 'Gather', input: ['W', 'input_ids'], output: ['e'] },
				{ opType: 'MatMul', input: ['e', 'W'], output: ['y'] }
			],
			['input_ids']
		);
		expect(() => openExportedDecoder(bytes)).toThrow(/No residual add follows the token embedding/);
	});
	it('a graph with no token input', () => {
		const bytes = graphWith([{ opType: 'MatMul', input: ['x', 'W'], output: ['y'] }], ['x']);
		expect(() => openExportedDecoder(bytes)).toThrow(/no integer token input/);
	});
	it('bytes that are not ONNX', () => {
		expect(() => openExportedDecoder(new TextEncoder().encode('<!doctype html>'.repeat(20)))).toThrow(/not an ONNX model/);
	});
});

describe('npm run hooks', () => {
	const cli = resolve(repoRoot, 'src/cli/hooks.ts');
	// Run with onnxruntime's wasm on Liftoff, as this process runs it (liftoff-only.ts): same results, a third of the CPU.
	const tsx = resolve(repoRoot, 'node_modules/.bin/tsx');
	it('prints the manifest as JSON, with --verify the differences', () => {
		const out = execFileSync(tsx, [LIFTOFF_ONLY, cli, resolve(exportsDir, 'gpt2_ort_fused_past.onnx'), '--verify'], { encoding: 'utf8' });
		const m = JSON.parse(out);
		expect(m.hooks['blocks.4.hook_resid_post']).toMatchObject({ source: 'SkipLayerNormalization output 3', exposed: true });
		expect(m.verify.maxAbsLogitDiff).toBeLessThanOrEqual(1e-5);
	});
	it('exits non-zero with the reason when it cannot trace the residual', () => {
		const r = spawnSync(tsx, [LIFTOFF_ONLY, cli, resolve(stories260KDir, 'tok512.bin')], { encoding: 'utf8' });
		expect(r.status).toBe(1);
		expect(r.stderr).toMatch(/not an ONNX model/);
	});
});

describe.each([
	{ arch: 'gpt2', style: 'unfused' },
	{ arch: 'gpt2', style: 'fused' },
	{ arch: 'llama', style: 'unfused' },
	{ arch: 'llama', style: 'fused' },
	{ arch: 'gemma', style: 'unfused' },
	{ arch: 'gemma', style: 'fused' }
] as const)("graph surgery on Loupe's tiny $arch graph, $style", ({ arch, style }) => {
	const bytes = buildTinyDecoder({ arch, style, layers: 3, dModel: 16, heads: 2, vocab: 64 });
	it('finds every hook, guesses the architecture, and the cut model equals the original', async () => {
		const d = openExportedDecoder(bytes);
		expect(d.trace).toMatchObject({ nLayers: 3, dModel: 16, vocabSize: 64, architecture: arch });
		expect(d.trace.addsPerLayer).toEqual([2, 2, 2]);
		// Fused: the last layer's sum exists only inside the final norm, and surgery names it.
		expect(d.trace.boundaries[3].exposed).toBe(style === 'fused');
		const r = await verifySurgery(ort, bytes, { sequences: 2, steps: 3 });
		expect(r.maxAbsLogitDiff).toBeLessThanOrEqual(1e-5);
		expect(r.cutAtOne.maxAbsLogitDiff).toBeLessThanOrEqual(1e-5);
		for (const diff of Object.values(r.maxAbsResidualDiff)) expect(diff).toBeLessThanOrEqual(1e-5);
		expect(r.steering!.maxAbsLogitDiff).toBeLessThanOrEqual(1e-5);
		expect(r.steering!.maxAbsInputDiff).toBeLessThanOrEqual(1e-6);
		expect(r.steering!.logitChange).toBeGreaterThan(0.01);
	});
});

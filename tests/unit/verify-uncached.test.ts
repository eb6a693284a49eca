// The independent check of the KV-cache wiring: cached step-by-step logits (a prompt of 1, a longer
// prompt, the prompt in two chunks) against ONE uncached forward of the unmodified graph over the
// whole sequence (empty past, so there is no cache to wire), for the original and the segmented
// graph, on every fixture export, on Loupe's tiny decoders, and on tiny graphs whose attention is a
// fused op (ONNX Attention, GroupQueryAttention) or a static TensorScatter cache. A deliberately
// miswired cache (the fp16 Llama's value cache fed keys, as Loupe once did) shows the check fails.
// The measured max abs errors are printed.
import { LIFTOFF_ONLY } from './liftoff-only';
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as ort from 'onnxruntime-web';
import { verifyCache, verifySurgery } from '../../src/lib/engine/model/onnx/verify';
import { buildTinyDecoder } from '../../src/lib/engine/model/onnx/tiny-decoders';
import { buildOpDecoder } from './op-decoders';
import { describeDecoderIo } from '../../src/lib/engine/model/onnx/decoder-io';
import { GraphIndex, decodeModel } from '../../src/lib/engine/model/onnx/graph';
import { fixturesDir, repoRoot } from '../fixtures';

ort.env.wasm.numThreads = 1;
ort.env.logLevel = 'fatal';
const read = (p: string) => new Uint8Array(readFileSync(resolve(fixturesDir, p)));
const FP32 = 1e-4;
// fp16 rounding of logits around 1 (an fp16 ulp there is ~1e-3); the old wiring was 0.067 off.
const FP16 = 2e-3;

const exportsFixtures = [
	{ file: 'onnx-exports/gpt2_megatron_torch_unfused.onnx', tol: FP32 },
	{ file: 'onnx-exports/gpt2_ort_fused_past.onnx', tol: FP32 },
	{
		file: 'onnx-exports/llama_modelbuilder_fp16/model.onnx',
		tol: FP16,
		data: 'onnx-exports/llama_modelbuilder_fp16/model.onnx.data',
		path: 'model.onnx.data'
	},
	{ file: 'torch-exports/gpt2/model.onnx', tol: FP32 },
	{ file: 'torch-exports/gptneox/model.onnx', tol: FP32 },
	{ file: 'torch-exports/llama/model.onnx', tol: FP32 },
	{ file: 'torch-exports/gemma3/model.onnx', tol: FP32, data: 'torch-exports/gemma3/model.onnx_data', path: 'model.onnx_data' }
];

describe.each(exportsFixtures)('cached vs uncached on $file', (f) => {
	it(`the original and the segmented graph, cached, equal one uncached forward (≤ ${f.tol})`, async () => {
		const externalData = f.data ? [{ path: f.path!, data: read(f.data) }] : undefined;
		const r = await verifySurgery(ort, read(f.file), { externalData, sequences: 1, steps: 3 });
		const c = r.cachedVsUncached;
		console.log(
			`${f.file}: cached vs uncached max abs error: original ${c.original.toExponential(2)}, segmented ${c.segmented.toExponential(2)} (${c.schedules.join(', ')})` +
				c.refused.map((x) => `; the graph refuses ${x.schedule}: ${x.reason}`).join('')
		);
		expect(c.schedules).toEqual(['1+1+1+1+1+1+1+1', '5+1+1+1', '3+2+1+1+1']);
		expect(c.original).toBeLessThanOrEqual(f.tol);
		expect(c.segmented).toBeLessThanOrEqual(f.tol);
		if (f.tol === FP16) {
			// The model builder's mask subgraph takes several tokens only from an empty cache: the chunked prefill
			// is the one schedule it may refuse, and it does, inside the graph (an Expand).
			expect(c.refused.map((x) => x.schedule)).toEqual(['3+2+1+1+1']);
			expect(c.refused[0].reason).toMatch(/Expand/);
		} else expect(c.refused).toEqual([]);
	});
});

describe('the check fails where the cache is miswired', () => {
	it('fp16 Llama with each value cache fed from present key (the first-reachable-output rule): far off', async () => {
		const bytes = read('onnx-exports/llama_modelbuilder_fp16/model.onnx');
		const externalData = [{ path: 'model.onnx.data', data: read('onnx-exports/llama_modelbuilder_fp16/model.onnx.data') }];
		const right = await verifyCache(ort, bytes, { vocabSize: 32000, externalData, sequences: 1 });
		const io = { ...right.io, kv: right.io.kv.map((p) => ({ ...p, present: p.present.replace('.value', '.key') })) };
		const wrong = await verifyCache(ort, bytes, { vocabSize: 32000, externalData, sequences: 1, io });
		console.log(
			`fp16 Llama cached vs uncached: paired by slots ${right.maxAbsDiff.toExponential(2)}, value fed keys ${wrong.maxAbsDiff.toExponential(2)}`
		);
		expect(right.maxAbsDiff).toBeLessThanOrEqual(FP16);
		expect(wrong.maxAbsDiff).toBeGreaterThan(0.02);
	});
	it('a static cache with key and value buffers swapped: far off', async () => {
		const bytes = buildOpDecoder('static');
		const right = await verifyCache(ort, bytes, { vocabSize: 48, sequences: 1 });
		const swap = (n: string) => (n.includes('key') ? n.replace('key', 'value') : n.replace('value', 'key'));
		const io = { ...right.io, kv: right.io.kv.map((p) => ({ ...p, present: swap(p.present) })) };
		const wrong = await verifyCache(ort, bytes, { vocabSize: 48, sequences: 1, io });
		console.log(`static cache: paired ${right.maxAbsDiff.toExponential(2)}, swapped ${wrong.maxAbsDiff.toExponential(2)}`);
		expect(right.maxAbsDiff).toBeLessThanOrEqual(FP32);
		expect(wrong.maxAbsDiff).toBeGreaterThan(0.01);
	});
});

describe.each([
	{ arch: 'gpt2', style: 'unfused' },
	{ arch: 'gpt2', style: 'fused' },
	{ arch: 'llama', style: 'unfused' },
	{ arch: 'llama', style: 'fused' },
	{ arch: 'gemma', style: 'unfused' },
	{ arch: 'gemma', style: 'fused' }
] as const)("cached vs uncached on Loupe's tiny $arch graph, $style", ({ arch, style }) => {
	it(`equal (≤ ${FP32})`, async () => {
		const r = await verifySurgery(ort, buildTinyDecoder({ arch, style, layers: 3 }), { sequences: 1, steps: 3 });
		console.log(
			`tiny ${arch} ${style}: original ${r.cachedVsUncached.original.toExponential(2)}, segmented ${r.cachedVsUncached.segmented.toExponential(2)}`
		);
		expect(r.cachedVsUncached.original).toBeLessThanOrEqual(FP32);
		expect(r.cachedVsUncached.segmented).toBeLessThanOrEqual(FP32);
		expect(r.cachedVsUncached.refused).toEqual([]);
	});
});

describe.each([
	{ kind: 'onnx-attention', via: /^Attention .* input 5 → output 2$/, value: 'past_key_values.1.value', present: 'present.1.value' },
	{ kind: 'gqa', via: /^GroupQueryAttention .* input 4 → output 2$/, value: 'past_key_values.1.value', present: 'present.1.value' },
	{ kind: 'static', via: /^TensorScatter .* writes it in place$/, value: 'value_cache.1', present: 'updated_value_cache.1' }
] as const)('a tiny decoder with $kind attention', ({ kind, via, value, present }) => {
	it(`pairs by the op's slots and, cached, equals one uncached forward (≤ ${FP32})`, async () => {
		const bytes = buildOpDecoder(kind);
		const r = await verifySurgery(ort, bytes, { sequences: 2, steps: 3 });
		console.log(
			`tiny ${kind}: original ${r.cachedVsUncached.original.toExponential(2)}, segmented ${r.cachedVsUncached.segmented.toExponential(2)}`
		);
		expect(r.cachedVsUncached.original).toBeLessThanOrEqual(FP32);
		expect(r.cachedVsUncached.segmented).toBeLessThanOrEqual(FP32);
		expect(r.cachedVsUncached.refused).toEqual([]);
		expect(r.maxAbsLogitDiff).toBeLessThanOrEqual(FP32);
		// The pairing the check above fed the graph through (verifyCache's, without running it again).
		const io = describeDecoderIo(new GraphIndex(decodeModel(bytes)));
		const pair = io.kv.find((p) => p.past === value)!;
		expect(pair.present).toBe(present);
		expect(pair.via).toMatch(via);
		if (kind === 'static') {
			expect(io).toMatchObject({ writeIndices: { name: 'write_indices' }, kvSeqLen: { name: 'nonpad_kv_seqlen' }, maxSeqLen: 16 });
			expect(pair).toMatchObject({ capacity: 16, seqAxis: 2 });
		}
	});
});

describe('npm run hooks --verify', () => {
	const cli = resolve(repoRoot, 'src/cli/hooks.ts');
	// Run with onnxruntime's wasm on Liftoff, as this process runs it (liftoff-only.ts): same results, a third of the CPU.
	const tsx = resolve(repoRoot, 'node_modules/.bin/tsx');
	const llamaDir = resolve(fixturesDir, 'onnx-exports/llama_modelbuilder_fp16');
	it('prints the manifest, then the cached-vs-uncached figure, as one JSON object', () => {
		const r = spawnSync(tsx, [LIFTOFF_ONLY, cli, join(llamaDir, 'model.onnx'), '--verify'], { encoding: 'utf8' });
		expect(r.status, r.stderr).toBe(0);
		const m = JSON.parse(r.stdout);
		// The manifest's fields come before verifying starts (the stream's first part).
		expect(r.stdout.indexOf('"kvCache"')).toBeLessThan(r.stdout.indexOf('"verify"'));
		expect(m.kvCache.pairs).toContainEqual({ past: 'past_key_values.0.value', present: 'present.0.value' });
		console.log(
			`npm run hooks -- llama_modelbuilder_fp16/model.onnx --verify: cachedVsUncached ${JSON.stringify({ original: m.verify.cachedVsUncached.original, segmented: m.verify.cachedVsUncached.segmented })}`
		);
		expect(m.verify.cachedVsUncached.original).toBeLessThanOrEqual(FP16);
		expect(m.verify.cachedVsUncached.segmented).toBeLessThanOrEqual(FP16);
		expect(r.stderr).toMatch(/verifying: original graph/);
	});
	it('says which step failed and why, still as one JSON object, and exits 1', () => {
		const dir = mkdtempSync(join(tmpdir(), 'loupe-verify-'));
		copyFileSync(join(llamaDir, 'model.onnx'), join(dir, 'model.onnx'));
		writeFileSync(join(dir, 'model.onnx.data'), readFileSync(join(llamaDir, 'model.onnx.data')).subarray(0, 1000));
		const r = spawnSync(tsx, [LIFTOFF_ONLY, cli, join(dir, 'model.onnx'), '--verify'], { encoding: 'utf8' });
		expect(r.status).toBe(1);
		const m = JSON.parse(r.stdout);
		expect(m.nLayers).toBe(2);
		expect(m.verify).toMatchObject({ failed: true, step: 'original graph: cached steps, uncached forward' });
		expect(r.stderr).toMatch(/verify failed at "original graph: cached steps, uncached forward": \S/);
	});
});

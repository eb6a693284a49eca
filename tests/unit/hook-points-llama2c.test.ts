// Loupe's own llama2.c graph (stories260K) cut at every hook, the new ones inside the layers
// (attn_out, mlp_in, mlp_out) included, against the plain TypeScript reference forward (written
// after run.c, sharing no code with the builder): the tensor at each hook at every position, the
// logits over a prefill and KV-cached steps, and adding v at a hook. Both ways of cutting are
// checked: the builder's own segments, and graph surgery on the builder's uncut graph.
import './liftoff-only';
import { beforeAll, describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-web';
import { readLlama2cCheckpoint } from '../../src/lib/engine/model/llama2c/checkpoint';
import { Llama2cTokenizer, BOS } from '../../src/lib/engine/model/llama2c/tokenizer';
import { ReferenceLlama, type SublayerHook } from '../../src/lib/engine/model/llama2c/reference-forward';
import { buildLlamaOnnx } from '../../src/lib/engine/model/llama2c/to-onnx';
import { openExportedDecoder, cutExportedDecoder, hookManifest } from '../../src/lib/engine/model/onnx/hook-manifest';
import { everyHookName, hookBoundary, isResidHook, parseHook } from '../../src/lib/engine/model/hooks';
import { SegmentRunner } from '../../src/lib/engine/model/runner';
import type { SegmentedModel } from '../../src/lib/engine/model/segments';
import { readArrayBuffer, stories260KDir } from '../fixtures';
import { maxAbsDiff } from '../numeric';

ort.env.wasm.numThreads = 1;
ort.env.logLevel = 'error';

const weights = readLlama2cCheckpoint(readArrayBuffer(`${stories260KDir}/stories260K.bin`), 'stories260K.bin');
const tokenizer = new Llama2cTokenizer(readArrayBuffer(`${stories260KDir}/tok512.bin`), weights.config.vocabSize);
const { nLayers, dim } = weights.config;
const tokens = [BOS, ...tokenizer.encode('Once upon a time, there was a little rabbit.', false)];
const PREFILL = 4;
const chunks = [tokens.slice(0, PREFILL), ...tokens.slice(PREFILL).map((t) => [t])];
const v = Float32Array.from({ length: dim }, (_, i) => 0.3 * Math.sin(0.7 * i + 1));

/** The reference at every position: logits and the tensor at each hook (canonical names); computed once per hook for all four ways. */
const references = new Map<string, ReturnType<typeof computeReference>>();
function reference(steer?: { hook: string }) {
	const key = steer?.hook ?? '';
	if (!references.has(key)) references.set(key, computeReference(steer));
	return references.get(key)!;
}
function computeReference(steer?: { hook: string }) {
	const ref = new ReferenceLlama(weights);
	const logits: Float32Array[] = [];
	const hooks = new Map<string, Float32Array[]>();
	const target = steer && parseHook(steer.hook)!;
	for (const t of tokens) {
		logits.push(
			ref.step(t, undefined, (l, kind, x) => {
				if (target && target.layer === l && target.kind === kind) for (let i = 0; i < dim; i++) x[i] += v[i];
			})
		);
		for (const h of everyHookName(nLayers)) {
			const p = parseHook(h)!;
			const x = isResidHook(h) ? ref.residual[hookBoundary(h, nLayers)] : ref.sublayer[p.layer][p.kind as SublayerHook];
			hooks.set(h, [...(hooks.get(h) ?? []), x.slice()]);
		}
	}
	return { logits: flatRows(logits), hooks: new Map([...hooks].map(([h, rows]) => [h, flatRows(rows)])) };
}

/** Concatenates rows (or chunks of rows) in order. */
function flatRows(rows: Float32Array[]): Float32Array {
	const out = new Float32Array(rows.reduce((n, r) => n + r.length, 0));
	let at = 0;
	for (const r of rows) (out.set(r, at), (at += r.length));
	return out;
}

/** Runs the chain over the tokens from an empty cache (prefill, then one token per step); collects logits and each hook's rows. */
async function runChain(runner: SegmentRunner, steer?: { hook: string }) {
	const logits: Float32Array[] = [];
	const hooks = new Map<string, Float32Array[]>();
	runner.reset();
	for (const chunk of chunks) {
		const out = await runner.forward(chunk, (hook, residual, rows) => {
			const x = residual.data as Float32Array;
			if (steer?.hook === hook) for (let i = 0; i < x.length; i++) x[i] += v[i % dim];
			for (let r = 0; r < rows; r++) hooks.set(hook, [...(hooks.get(hook) ?? []), x.slice(r * dim, (r + 1) * dim)]);
		});
		logits.push(Float32Array.from(out.logits.data as Float32Array));
		out.logits.dispose();
	}
	return { logits: flatRows(logits), hooks: new Map([...hooks].map(([h, rows]) => [h, flatRows(rows)])) };
}

const canonical = (h: string) =>
	h.endsWith('hook_resid_post') && hookBoundary(h, nLayers) < nLayers ? `blocks.${hookBoundary(h, nLayers)}.hook_resid_pre` : h;
const kinds = (errors: Record<string, number>) => {
	const out: Record<string, number> = {};
	for (const [h, e] of Object.entries(errors)) {
		const k = isResidHook(h) ? 'resid' : parseHook(h)!.kind;
		out[k] = Math.max(out[k] ?? 0, e);
	}
	return JSON.stringify(Object.fromEntries(Object.entries(out).map(([k, e]) => [k, e.toExponential(2)])));
};

// Every hook; and a few, so that a segment starting inside a layer must get the next add's other
// operand from an earlier segment that was not cut there (attn_out without resid_pre, mlp_out
// without mlp_in, mlp_in without resid_pre).
const every = everyHookName(nLayers);
const few = ['blocks.1.hook_attn_out', 'blocks.2.hook_mlp_out', 'blocks.3.hook_mlp_in', 'blocks.4.hook_resid_pre'];
const ways: { way: string; hooks: string[]; model: () => SegmentedModel }[] = [every, few].flatMap((hooks) => [
	{ way: `the builder's segments, ${hooks.length} hooks`, hooks, model: () => buildLlamaOnnx(weights, hooks) },
	{
		way: `graph surgery on the builder's uncut graph, ${hooks.length} hooks`,
		hooks,
		model: () => {
			const whole = buildLlamaOnnx(weights);
			const d = openExportedDecoder(whole.segments[0].bytes);
			return { ...whole, cuts: [], segments: cutExportedDecoder(d, hooks) };
		}
	}
]);

describe.each(ways)('stories260K cut at hooks ($way) against the TS reference forward', ({ way, hooks: cutHooks, model }) => {
	const sublayerHooks = cutHooks.filter((h) => !isResidHook(h));
	const clean = reference();
	// One runner for the clean run and every steered one (reset between runs, as the app reuses a loaded model).
	let runner: SegmentRunner;
	let chain: Awaited<ReturnType<typeof runChain>>;
	beforeAll(async () => {
		runner = await SegmentRunner.create(ort, model(), 'wasm');
		chain = await runChain(runner);
		return () => runner.dispose();
	}, 60_000);

	it('hands each hook across its cut, equal to the reference at every position; logits too', () => {
		expect([...chain.hooks.keys()].sort()).toEqual([...new Set(cutHooks.map(canonical))].sort());
		const errors: Record<string, number> = {};
		for (const h of cutHooks) errors[h] = maxAbsDiff(chain.hooks.get(canonical(h))!, clean.hooks.get(h)!);
		const logitErr = maxAbsDiff(chain.logits, clean.logits);
		console.log(
			`stories260K, ${way}: max abs error vs reference by kind ${kinds(errors)}; logits ${logitErr.toExponential(2)} (prefill ${PREFILL}, ${tokens.length - PREFILL} cached steps)`
		);
		for (const [h, e] of Object.entries(errors)) expect(e, h).toBeLessThan(1e-4);
		expect(logitErr).toBeLessThan(1e-4);
	});

	it('adding v at each hook inside a layer equals the reference with v added there', { timeout: 120_000 }, async () => {
		const errors: Record<string, number> = {};
		let smallestChange = Infinity;
		for (const hook of sublayerHooks) {
			const want = reference({ hook });
			const got = await runChain(runner, { hook });
			errors[hook] = maxAbsDiff(got.logits, want.logits);
			smallestChange = Math.min(smallestChange, maxAbsDiff(want.logits, clean.logits));
		}
		console.log(
			`stories260K, ${way}: steering |chain − reference| by kind ${kinds(errors)}; smallest logit change ${smallestChange.toExponential(2)}`
		);
		for (const [h, e] of Object.entries(errors)) expect(e, h).toBeLessThan(1e-4);
		expect(smallestChange).toBeGreaterThan(1e-3);
	});
});

describe("surgery on the builder's uncut graph", () => {
	it('finds attn_out, mlp_in and mlp_out at the tensors the builder writes them to', () => {
		const d = openExportedDecoder(buildLlamaOnnx(weights).segments[0].bytes);
		const m = hookManifest(d, []);
		expect(m.warnings).toEqual([]);
		for (let l = 0; l < nLayers; l++) {
			expect(m.sublayerHooks[`blocks.${l}.hook_attn_out`].tensor).toBe(`/blocks.${l}/attn/o`);
			expect(m.sublayerHooks[`blocks.${l}.hook_mlp_in`].tensor).toBe(`/blocks.${l}/ln2/out`);
			expect(m.sublayerHooks[`blocks.${l}.hook_mlp_out`].tensor).toBe(`/blocks.${l}/mlp/down`);
		}
	});
	it('the builder says which hooks it cut at, in order', () => {
		const built = buildLlamaOnnx(weights, ['blocks.1.hook_mlp_out', 2, 'blocks.1.hook_attn_out', 'blocks.0.hook_resid_post']);
		expect(built.cutHooks).toEqual([
			'blocks.1.hook_resid_pre',
			'blocks.1.hook_attn_out',
			'blocks.1.hook_mlp_out',
			'blocks.2.hook_resid_pre'
		]);
		expect(built.cuts).toEqual([1, 2]);
		expect(built.segments.map((s) => s.layers)).toEqual([
			[0, 1],
			[1, 2],
			[1, 2],
			[1, 2],
			[2, 5]
		]);
	});
});

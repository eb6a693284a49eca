// The fused llama2.c graph (onnxruntime's contrib ops: SkipSimplifiedLayerNormalization,
// RotaryEmbedding + Einsum attention, or GroupQueryAttention with rotary; QuickGelu) run by
// onnxruntime-web (wasm) in Node, both attention kinds, against what
// Loupe's graph code did not write: the plain TS reference forward (after run.c) at every position
// over a prefill and KV-cached steps, whole and cut at hooks (each hook's tensor, and an edit at a
// hook reaching the rest of the model), and llama2.c's published greedy output.
import './liftoff-only';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-web';
import { readLlama2cCheckpoint } from '../../src/lib/engine/model/llama2c/checkpoint';
import { Llama2cTokenizer, BOS } from '../../src/lib/engine/model/llama2c/tokenizer';
import { ReferenceLlama, type SublayerHook } from '../../src/lib/engine/model/llama2c/reference-forward';
import { buildLlamaOnnx } from '../../src/lib/engine/model/llama2c/to-onnx';
import { decodeModel } from '../../src/lib/engine/model/onnx/graph';
import { everyHookName, hookBoundary, isResidHook, parseHook } from '../../src/lib/engine/model/hooks';
import { SegmentRunner } from '../../src/lib/engine/model/runner';
import type { SegmentedModel } from '../../src/lib/engine/model/segments';
import { publishedGreedy256, readArrayBuffer, stories260KDir } from '../fixtures';
import { argmax, maxAbsDiff } from '../numeric';

ort.env.wasm.numThreads = 1;
ort.env.logLevel = 'error';

const weights = readLlama2cCheckpoint(readArrayBuffer(`${stories260KDir}/stories260K.bin`), 'stories260K.bin');
const tokenizer = new Llama2cTokenizer(readArrayBuffer(`${stories260KDir}/tok512.bin`), weights.config.vocabSize);
const { nLayers, dim } = weights.config;
const tokens = [BOS, ...tokenizer.encode('Once upon a time, there was a little rabbit named Tim. He liked to', false)];
const v = Float32Array.from({ length: dim }, (_, i) => 0.3 * Math.sin(0.7 * i + 1));
type Attention = 'ops' | 'gqa';
const fused = (cuts: (number | string)[] = [], attention: Attention = 'ops') => buildLlamaOnnx(weights, cuts, { fused: true, attention });

/** The reference at every position: logits and each hook's tensor; `steer` adds v at one hook. */
function reference(steer?: string) {
	const ref = new ReferenceLlama(weights);
	const target = steer ? parseHook(steer)! : undefined;
	const boundary = steer && isResidHook(steer) ? hookBoundary(steer, nLayers) : -1;
	const logits: Float32Array[] = [];
	const hooks = new Map<string, Float32Array[]>();
	const add = (x: Float32Array) => x.forEach((_, i) => (x[i] += v[i]));
	for (const t of tokens) {
		logits.push(
			ref.step(
				t,
				(b, x) => b === boundary && add(x),
				(l, kind, x) => target?.layer === l && target.kind === kind && add(x)
			)
		);
		for (const h of everyHookName(nLayers)) {
			const p = parseHook(h)!;
			const x = isResidHook(h) ? ref.residual[hookBoundary(h, nLayers)] : ref.sublayer[p.layer][p.kind as SublayerHook];
			hooks.set(h, [...(hooks.get(h) ?? []), x.slice()]);
		}
	}
	return { logits, hooks };
}

const canonical = (h: string) =>
	h.endsWith('hook_resid_post') && hookBoundary(h, nLayers) < nLayers ? `blocks.${hookBoundary(h, nLayers)}.hook_resid_pre` : h;
const cat = (rows: Float32Array[]) => Float32Array.from(rows.flatMap((r) => [...r]));

/** Runs the chain from an empty cache in chunks (a prefill, then steps); collects logits per position and each cut hook's rows (v added at `steer`). */
async function runChain(runner: SegmentRunner, chunks: number[], steer?: string) {
	const logits: Float32Array[] = [];
	const hooks = new Map<string, Float32Array[]>();
	const V = weights.config.vocabSize;
	runner.reset();
	let pos = 0;
	for (const n of chunks) {
		const out = await runner.forward(tokens.slice(pos, pos + n), (hook, residual, rows) => {
			const x = residual.data as Float32Array;
			if (steer && canonical(steer) === hook) for (let i = 0; i < x.length; i++) x[i] += v[i % dim];
			for (let r = 0; r < rows; r++) hooks.set(hook, [...(hooks.get(hook) ?? []), x.slice(r * dim, (r + 1) * dim)]);
		});
		const data = out.logits.data as Float32Array;
		for (let r = 0; r < out.rows; r++) logits.push(data.slice(r * V, (r + 1) * V));
		out.logits.dispose();
		pos += n;
	}
	return { logits, hooks };
}

const clean = reference();
/** The reference steered at a hook, once per hook (the two attention kinds' cases steer at the same ones). */
const steered = new Map<string, ReturnType<typeof reference>>();
const referenceAt = (hook: string) => steered.get(hook) ?? steered.set(hook, reference(hook)).get(hook)!;

// One runner per attention kind of the uncut fused graph, for every case that runs it (reset between
// runs, as the app reuses a loaded model): building and compiling the graph is most of a case's cost.
const uncut = new Map<Attention, Promise<SegmentRunner>>();
const uncutRunner = (attention: Attention) =>
	uncut.get(attention) ?? uncut.set(attention, SegmentRunner.create(ort, fused([], attention), 'wasm')).get(attention)!;
afterAll(async () => {
	for (const r of uncut.values()) await (await r).dispose();
});

const ops = (m: SegmentedModel) => decodeModel(m.segments[0].bytes).graph!.node!.map((n) => `${n.domain || ''}:${n.opType}`);
const count = (list: string[], op: string) => list.filter((o) => o === op).length;

describe('the fused llama2.c graph', () => {
	it('is built from the contrib ops the model builder emits', () => {
		const plain = ops(buildLlamaOnnx(weights));
		for (const attention of ['ops', 'gqa'] as const) {
			const f = ops(fused([], attention));
			// every residual add meets the next norm: 2 per layer (the last one is the final norm)
			expect(count(f, 'com.microsoft:SkipSimplifiedLayerNormalization')).toBe(2 * nLayers);
			expect(count(f, ':SimplifiedLayerNormalization')).toBe(1);
			expect(count(f, 'com.microsoft:QuickGelu')).toBe(nLayers);
			expect(count(f, ':ReduceMean') + count(f, ':Sigmoid') + count(f, ':Div')).toBe(0);
			if (attention === 'gqa') {
				expect(count(f, 'com.microsoft:GroupQueryAttention')).toBe(nLayers);
				expect(f.filter((o) => /Softmax|Transpose|Reshape|Concat/.test(o))).toEqual([]);
			} else expect(count(f, 'com.microsoft:RotaryEmbedding')).toBe(2 * nLayers);
			console.log(`graph nodes: fused (${attention}) ${f.length}, plain ${plain.length}`);
			expect(f.length * 2).toBeLessThan(plain.length);
		}
	});

	for (const attention of ['ops', 'gqa'] as const)
		for (const chunks of [
			[5, ...Array(tokens.length - 5).fill(1)],
			[3, 4, 1, 6, ...Array(tokens.length - 14).fill(1)]
		])
			it(`attention '${attention}': equals the reference logits at every position (chunks ${chunks.slice(0, 4).join(', ')}, … then cached steps)`, async () => {
				const { logits } = await runChain(await uncutRunner(attention), chunks);
				expect(logits.length).toBe(tokens.length);
				const err = maxAbsDiff(cat(logits), cat(clean.logits));
				console.log(`fused (${attention}), whole: max |logits − reference| over ${tokens.length} positions ${err.toExponential(2)}`);
				expect(err).toBeLessThan(1e-4);
			});

	it.each(['ops', 'gqa'] as const)("attention '%s': reproduces run.c's published greedy output (256 steps from BOS)", async (attention) => {
		const runner = await uncutRunner(attention);
		const out: number[] = [];
		let token = BOS;
		runner.reset();
		for (let pos = 0; pos < 256; pos++) {
			const { logits } = await runner.forward([token]);
			const next = argmax(logits.data as Float32Array);
			logits.dispose();
			if (next === BOS) break;
			out.push(next);
			token = next;
		}
		expect(tokenizer.decode(out)).toBe(publishedGreedy256());
	});
});

const PREFILL = 4;
const steps = [PREFILL, ...Array(tokens.length - PREFILL).fill(1)];
const few = [
	'blocks.0.hook_resid_post',
	'blocks.1.hook_attn_out',
	'blocks.2.hook_mlp_out',
	'blocks.3.hook_mlp_in',
	'blocks.4.hook_resid_post'
];

describe.each([
	{ name: 'every hook', hooks: everyHookName(nLayers), attention: 'ops' as Attention },
	{ name: 'a few hooks (carried operands)', hooks: few, attention: 'ops' as Attention },
	{ name: 'every hook', hooks: everyHookName(nLayers), attention: 'gqa' as Attention }
])("the fused graph ('$attention') cut at $name", ({ hooks: cuts, attention }) => {
	// One runner for the clean run and every steered one (reset between runs).
	let runner: SegmentRunner;
	let chain: Awaited<ReturnType<typeof runChain>>;
	beforeAll(async () => {
		runner = await SegmentRunner.create(ort, fused(cuts, attention), 'wasm');
		chain = await runChain(runner, steps);
		return () => runner.dispose();
	}, 60_000);

	it("hands each hook across its cut equal to the reference's captured value, logits too", () => {
		expect([...chain.hooks.keys()].sort()).toEqual([...new Set(cuts.map(canonical))].sort());
		let worst = 0;
		for (const h of cuts) {
			const e = maxAbsDiff(cat(chain.hooks.get(canonical(h))!), cat(clean.hooks.get(h)!));
			expect(e, h).toBeLessThan(1e-4);
			worst = Math.max(worst, e);
		}
		const logitErr = maxAbsDiff(cat(chain.logits), cat(clean.logits));
		console.log(
			`fused (${attention}), cut at ${cuts.length} hooks: max |hook − reference| ${worst.toExponential(2)}, logits ${logitErr.toExponential(2)}`
		);
		expect(logitErr).toBeLessThan(1e-4);
	});

	it(
		'an edit at each cut reaches the rest of the model as in the reference (the fused add + norm is split there)',
		{ timeout: 120_000 },
		async () => {
			let worst = 0;
			let smallestChange = Infinity;
			// Residual boundaries are where a SkipSimplifiedLayerNormalization would otherwise swallow the sum.
			const targets =
				cuts.length > few.length
					? [
							'blocks.1.hook_resid_pre',
							'blocks.2.hook_attn_out',
							'blocks.3.hook_mlp_in',
							'blocks.3.hook_mlp_out',
							'blocks.4.hook_resid_post'
						]
					: cuts;
			for (const hook of targets) {
				const want = referenceAt(hook);
				const got = await runChain(runner, steps, hook);
				const e = maxAbsDiff(cat(got.logits), cat(want.logits));
				expect(e, hook).toBeLessThan(1e-4);
				worst = Math.max(worst, e);
				smallestChange = Math.min(smallestChange, maxAbsDiff(cat(want.logits), cat(clean.logits)));
			}
			console.log(
				`fused (${attention}), steered at ${targets.length} hooks: max |logits − reference| ${worst.toExponential(2)}; smallest logit change ${smallestChange.toExponential(2)}`
			);
			expect(smallestChange).toBeGreaterThan(1e-3);
		}
	);
});

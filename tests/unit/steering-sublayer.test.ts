// Steering at a hook inside a layer, through the engine's own session and steering path (ModelSession,
// Steering's plan, ensureCuts and the residual callback keyed by hook name) in Node on wasm: a vector
// added at blocks.1.hook_mlp_out gives the logits of an independent forward with the vector added
// there: the plain TS reference forward for stories260K (llama2.c), and the unmodified torch export
// of GPT-2 with an Add inserted after the tensor surgery names as that hook (run unoptimised). A contrast vector made
// at mlp_out reads the tensor the reference has there. A hook the model lacks is refused in words.
import './liftoff-only';
import './engine-in-node';
import { describe, expect, it, vi } from 'vitest';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as ort from 'onnxruntime-web/webgpu';
import { ModelSession, type Loaded } from '../../src/lib/engine/model/session';
import { Steering } from '../../src/lib/engine/steer/steering';
import type { ResidualHook } from '../../src/lib/engine/model/runner';
import type { SteeringVector } from '../../src/lib/engine/steer/vectors';
import { readLlama2cCheckpoint } from '../../src/lib/engine/model/llama2c/checkpoint';
import { ReferenceLlama } from '../../src/lib/engine/model/llama2c/reference-forward';
import { openExportedDecoder } from '../../src/lib/engine/model/onnx/hook-manifest';
import { fixturesDir, readArrayBuffer, stories260KDir } from '../fixtures';
import { values, withAdd } from '../graph-checks';
import { emptyPast, stepFeeds } from '../../src/lib/engine/model/onnx/decoder-io';
import type { ExportedDecoder } from '../../src/lib/engine/model/onnx/hook-manifest';
import { maxAbs, maxAbsDiff } from '../numeric';

// The session reads the worker's globals: give Node a `self` and a navigator without WebGPU.

// Node has no IndexedDB: saved steering vectors are kept in a map instead (the rest of the store is unused here).
const saved = new Map<string, SteeringVector>();
vi.mock('../../src/lib/engine/store/db', async (original) => ({
	...(await original<object>()),
	saveVector: async (v: SteeringVector) => void saved.set(v.id, v),
	getVector: async (id: string) => saved.get(id)
}));

const HOOK = 'blocks.1.hook_mlp_out';
const fileAt = (dir: string, name: string) => new File([readFileSync(resolve(dir, name))], name);

/** Steering with one saved vector. */
async function steeringWith(session: ModelSession, v: SteeringVector, value: number) {
	saved.set(v.id, v);
	const steering = new Steering(session);
	await steering.set({ steerSpecial: true, features: [{ feature: -1, vector: v.id, mode: 'add', value, normalize: false }] });
	return steering;
}

/** The residual hook Steering hands the runner for its current setup (after cutting the model where it needs). */
const steeringHook = (s: Steering, m: Loaded) => (s as unknown as { hook(m: Loaded): Promise<ResidualHook | undefined> }).hook(m);

/** One forward of the loaded model through its runner, with an optional residual hook: every row's logits. */
async function forward(m: Loaded, ids: number[], hook?: ResidualHook): Promise<Float32Array> {
	m.runner.reset();
	const out = await m.runner.forward(ids, hook);
	const logits = Float32Array.from(out.logits.data as Float32Array);
	out.logits.dispose();
	return logits;
}

const vectorFor = (model: string, d: number, hook = HOOK): SteeringVector => ({
	id: 'test01',
	name: 'test',
	model,
	hook,
	values: Float32Array.from({ length: d }, (_, i) => 0.4 * Math.sin(0.9 * i + 0.3)),
	positive: ['a'],
	negative: ['b'],
	createdAt: '2026-01-01T00:00:00Z'
});

describe('steering at blocks.1.hook_mlp_out on stories260K (llama2.c), against the TS reference forward', () => {
	const weights = readLlama2cCheckpoint(readArrayBuffer(`${stories260KDir}/stories260K.bin`), 'stories260K.bin');
	const { dim, vocabSize } = weights.config;

	// One session for the three cases (loading and cutting stories260K is most of their cost); the
	// first case runs first and sees the model uncut, so it still proves steering cuts it.
	let opened: Promise<ModelSession> | null = null;
	const stories = () =>
		(opened ??= (async () => {
			const session = new ModelSession();
			await session.loadFromFiles([fileAt(stories260KDir, 'stories260K.bin'), fileAt(stories260KDir, 'tok512.bin')]);
			return session;
		})());

	/** The reference's logits at every position, the vector added at layer 1's mlp_out when given. */
	function reference(ids: number[], v?: Float32Array, scale = 1) {
		const ref = new ReferenceLlama(weights);
		const rows: number[] = [];
		const mlpOut: number[] = [];
		for (const t of ids) {
			const logits = ref.step(t, undefined, (l, kind, x) => {
				if (v && l === 1 && kind === 'mlp_out') for (let i = 0; i < dim; i++) x[i] += scale * v[i];
			});
			rows.push(...logits);
			mlpOut.push(...ref.sublayer[1].mlp_out);
		}
		return { logits: Float32Array.from(rows), mlpOut: Float32Array.from(mlpOut) };
	}

	it(
		'a vector added there gives the reference logits with it added there; the model is cut at that hook',
		{ timeout: 120_000 },
		async () => {
			const session = await stories();
			const info = session.requireModel().info;
			expect(info.cutAt).toEqual([]);
			expect(info.hooks).toContain(HOOK);
			expect(info.hooks.filter((h) => h.startsWith('blocks.1.'))).toEqual(
				['resid_pre', 'attn_out', 'mlp_in', 'mlp_out', 'resid_post'].map((k) => `blocks.1.hook_${k}`)
			);
			const m = session.requireModel();
			const ids = m.tokenizer.encode('Once upon a time, there was a little rabbit');
			const v = vectorFor(m.info.id, dim);
			const steering = await steeringWith(session, v, 2);
			const hook = await session.locked(() => steeringHook(steering, m));
			expect(m.info.cutAt).toEqual([HOOK]);
			const steered = await forward(m, ids, hook);
			const want = reference(ids, v.values, 2).logits;
			const clean = reference(ids).logits;
			const err = maxAbsDiff(steered, want);
			const change = maxAbsDiff(want, clean);
			console.log(
				`stories260K, add 2·v at ${HOOK}: |engine − reference| ${err.toExponential(2)} (logits change by ${change.toFixed(3)}); ${ids.length} tokens × ${vocabSize}`
			);
			expect(change).toBeGreaterThan(0.1);
			expect(err).toBeLessThan(1e-4);
			// The unsteered forward through the same cut model is the clean reference.
			expect(maxAbsDiff(await forward(m, ids), clean)).toBeLessThan(1e-4);
			// The public path: the next-token table with steering is the reference's softmax, top 10.
			const table = await steering.nextTokenTable('Once upon a time, there was a little rabbit', 10);
			const last = want.slice((ids.length - 1) * vocabSize);
			const z = Math.max(...last);
			const sum = last.reduce((a, x) => a + Math.exp(x - z), 0);
			const top = [...last]
				.map((x, id) => ({ id, p: Math.exp(x - z) / sum }))
				.sort((a, b) => b.p - a.p)
				.slice(0, 10);
			expect(table.steered.map((t) => t.id)).toEqual(top.map((t) => t.id));
			expect(
				maxAbsDiff(
					table.steered.map((t) => t.value),
					top.map((t) => t.p)
				)
			).toBeLessThan(1e-5);
		}
	);

	it(
		"a contrast vector made at mlp_out is the mean over the prompts' tokens (BOS left out) of the reference's mlp_out",
		{ timeout: 60_000 },
		async () => {
			const session = await stories();
			const m = session.requireModel();
			const positive = ['Once upon a time', 'The little rabbit'];
			const negative = ['The cat sat'];
			const meanOf = (prompts: string[]) => {
				const acc = new Float64Array(dim);
				let n = 0;
				for (const p of prompts) {
					const ids = m.tokenizer.encode(p);
					const { mlpOut } = reference(ids);
					for (let t = 1; t < ids.length; t++, n++) for (let i = 0; i < dim; i++) acc[i] += mlpOut[t * dim + i];
				}
				return Float32Array.from(acc, (x) => x / n);
			};
			const neg = meanOf(negative);
			const want = meanOf(positive).map((x, i) => x - neg[i]);
			const summary = await new Steering(session).makeContrastVector({ name: 'x', hook: HOOK, positive, negative });
			expect(summary.hook).toBe(HOOK);
			expect(m.info.cutAt).toEqual([HOOK]);
			const made = saved.get(summary.id)!.values;
			const err = maxAbsDiff(made, want);
			console.log(
				`stories260K, contrast vector at ${HOOK}: |engine − reference| ${err.toExponential(2)} (norm ${Math.hypot(...want).toFixed(3)})`
			);
			expect(maxAbs(want)).toBeGreaterThan(0.01);
			expect(err).toBeLessThan(1e-4);
		}
	);

	it('a hook the model does not have is refused in words, naming what to pick', async () => {
		const session = await stories();
		const m = session.requireModel();
		await expect(session.locked(() => session.ensureCuts(m, ['blocks.9.hook_mlp_out']))).rejects.toThrow(
			/no hook point "blocks\.9\.hook_mlp_out" in this 5-layer model/
		);
		await expect(
			new Steering(session).makeContrastVector({ name: '', hook: 'blocks.1.attn.hook_z', positive: ['a'], negative: ['b'] })
		).rejects.toThrow(/no hook point "blocks\.1\.attn\.hook_z"/);
	});
});

/**
 * One forward of the edited graph from an empty past, as graph-checks' runWhole, but with the ORT
 * the engine already started (runWhole's plain onnxruntime-web is a second wasm module to compile)
 * and no graph optimisation: ORT's fusion passes over the whole export were most of this test's CPU
 * time, and the reference is then the graph exactly as written, Add included.
 */
async function runUnoptimised(d: ExportedDecoder, bytes: Uint8Array, ids: number[]) {
	const s = await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'], graphOptimizationLevel: 'disabled' });
	try {
		return await s.run({ ...stepFeeds(ort, d.io, ids, 0), ...Object.fromEntries(d.io.kv.map((p) => [p.past, emptyPast(ort, p)])) });
	} finally {
		await s.release();
	}
}

describe('steering at blocks.1.hook_mlp_out on the GPT-2 torch export, against an Add inserted into the unmodified graph', () => {
	const dir = join(fixturesDir, 'torch-exports', 'gpt2');
	// The export comes without a tokenizer; the session needs one to open files, so a word-level one is written here.
	const words = ['<|endoftext|>', 'Once', 'upon', 'a', 'time'];
	const tokenizerJson = {
		version: '1.0',
		truncation: null,
		padding: null,
		added_tokens: [{ id: 0, content: words[0], single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }],
		normalizer: null,
		pre_tokenizer: { type: 'WhitespaceSplit' },
		post_processor: null,
		decoder: { type: 'WordPiece', prefix: '##', cleanup: false },
		model: { type: 'WordLevel', vocab: Object.fromEntries(words.map((w, i) => [w, i])), unk_token: words[0] }
	};
	const ref = JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8')) as { prompts: { input_ids: number[] }[] };

	it('the engine steered equals the edited graph, and differs from the unsteered engine', { timeout: 180_000 }, async () => {
		const session = new ModelSession();
		const info = await session.loadFromFiles(
			[
				fileAt(dir, 'model.onnx'),
				fileAt(dir, 'config.json'),
				new File([JSON.stringify(tokenizerJson)], 'tokenizer.json'),
				new File([JSON.stringify({ bos_token: words[0], eos_token: words[0] })], 'tokenizer_config.json')
			],
			[HOOK]
		); // cut there from the start: one ORT session of GPT-2 fewer (stories260K above proves steering cuts where it needs)
		expect(info.hooks).toContain(HOOK);
		const m = session.requireModel();
		const { dModel, vocabSize } = m.source.shape;
		const ids = ref.prompts[0].input_ids;
		const v = vectorFor(m.info.id, dModel);
		const steering = await steeringWith(session, v, 1);
		const hook = await session.locked(() => steeringHook(steering, m));
		expect(m.info.cutAt).toEqual([HOOK]);
		const tensor = m.info.manifest!.sublayerHooks[HOOK].tensor;
		const steered = await forward(m, ids, hook);
		const clean = await forward(m, ids);

		const bytes = new Uint8Array(readFileSync(join(dir, 'model.onnx')));
		const d = openExportedDecoder(bytes);
		const want = values((await runUnoptimised(d, withAdd(bytes, tensor, v.values, false), ids))[d.io.logits]);
		const err = maxAbsDiff(steered, want);
		const change = maxAbsDiff(want, clean);
		console.log(
			`gpt2 torch export, add v at ${HOOK} (${tensor}): |engine − edited graph| ${err.toExponential(2)} (logits change by ${change.toFixed(3)})`
		);
		expect(change).toBeGreaterThan(0.01);
		expect(err).toBeLessThan(1e-4);
		expect(steered.length).toBe(ids.length * vocabSize);
	});
});

// Steering scoped in time and space, and Neuronpedia's two other methods, through the engine's own
// session and steering hook (Steering's plan, scopeRows with the runner's positions, the kernel's
// reference on the wasm path) on stories260K in Node: a prompt's prefill and then single decode
// steps, a saved vector at blocks.1.hook_mlp_out. Checked against what Loupe did not write:
//  - the hook's output row by row: at positions outside the scope it is the unsteered run's, inside
//    it is the unsteered row edited by the method's formula as Neuronpedia's engine writes it
//    (interp_engine/steer.py, written out again here);
//  - the logits of every position against the plain TS reference forward with that edit made at
//    exactly those positions.
// The public path: the next-token table is unchanged by a setup that steers generated tokens only.
import './liftoff-only';
import './engine-in-node';
import { describe, expect, it, vi } from 'vitest';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { ModelSession, type Loaded } from '../../src/lib/engine/model/session';
import { Steering } from '../../src/lib/engine/steer/steering';
import type { ResidualHook } from '../../src/lib/engine/model/runner';
import type { SteerFeature } from '../../src/lib/engine/steer/spec';
import type { SteeringVector } from '../../src/lib/engine/steer/vectors';
import { readLlama2cCheckpoint } from '../../src/lib/engine/model/llama2c/checkpoint';
import { ReferenceLlama } from '../../src/lib/engine/model/llama2c/reference-forward';
import { readArrayBuffer, stories260KDir } from '../fixtures';
import { maxAbsDiff } from '../numeric';

const saved = new Map<string, SteeringVector>();
vi.mock('../../src/lib/engine/store/db', async (original) => ({
	...(await original<object>()),
	saveVector: async (v: SteeringVector) => void saved.set(v.id, v),
	getVector: async (id: string) => saved.get(id)
}));

const HOOK = 'blocks.1.hook_mlp_out';
const PROMPT = 'Once upon a time, there was';
const DECODED = [263, 300, 17, 45]; // fed one at a time after the prompt (teacher-forced, the same in every run)
const fileAt = (dir: string, name: string) => new File([readFileSync(resolve(dir, name))], name);
const weights = readLlama2cCheckpoint(readArrayBuffer(`${stories260KDir}/stories260K.bin`), 'stories260K.bin');
const D = weights.config.dim;
const V = weights.config.vocabSize;
const vec = Float32Array.from({ length: D }, (_, i) => 0.4 * Math.sin(0.9 * i + 0.3) + 0.05);

// Neuronpedia's methods on one row h (interp_engine/steer.py: additive coeff·v; OrthogonalProjector.delta
// (c − 1)(h·û)û; projection_cap_delta (clamp(h·û, max = c) − h·û)û), written here from the source.
function neuronpedia(mode: SteerFeature['mode'], c: number, h: Float32Array, v: Float32Array): Float32Array {
	const norm = Math.hypot(...v);
	const u = v.map((x) => x / norm);
	const proj = h.reduce((a, x, i) => a + x * u[i], 0);
	if (mode === 'add') return h.map((x, i) => x + c * v[i]);
	if (mode === 'orthogonal') return h.map((x, i) => x + (c - 1) * proj * u[i]);
	if (mode === 'cap') return h.map((x, i) => x + (Math.min(proj, c) - proj) * u[i]);
	throw new Error(mode);
}

let loaded: Promise<{ session: ModelSession; m: Loaded; ids: number[]; clean: Awaited<ReturnType<typeof run>> }> | null = null;
/** One session for every case (loading is most of the cost). */
function open() {
	loaded ??= (async () => {
		const session = new ModelSession();
		await session.loadFromFiles([fileAt(stories260KDir, 'stories260K.bin'), fileAt(stories260KDir, 'tok512.bin')]);
		const m = session.requireModel();
		await session.locked(() => session.ensureCuts(m, [HOOK])); // the unsteered run reads the hook too
		const ids = m.tokenizer.encode(PROMPT);
		return { session, m, ids, clean: await run(m, ids) };
	})();
	return loaded;
}

/** The prompt, then each decoded token alone, through the runner; the hook's output (after `hook`) and the logits, per position. */
async function run(m: Loaded, ids: number[], hook?: ResidualHook) {
	const rows: Float32Array[] = [];
	const logits: Float32Array[] = [];
	m.runner.reset();
	for (const chunk of [ids, ...DECODED.map((t) => [t])]) {
		const out = await m.runner.forward(chunk, async (name, residual, n) => {
			await hook?.(name, residual, n);
			if (name !== HOOK) return;
			const x = residual.data as Float32Array;
			for (let t = 0; t < n; t++) rows.push(x.slice(t * D, (t + 1) * D));
		});
		const l = out.logits.data as Float32Array;
		for (let t = 0; t < chunk.length; t++) logits.push(l.slice(t * V, (t + 1) * V));
		out.logits.dispose();
	}
	return { rows, logits };
}

/** The reference forward with `edit` made at HOOK at the positions it is given. */
function reference(ids: number[], edit: (pos: number, x: Float32Array) => void) {
	const ref = new ReferenceLlama(weights);
	return [...ids, ...DECODED].map((t, pos) =>
		ref.step(t, undefined, (l, kind, x) => {
			if (l === 1 && kind === 'mlp_out') edit(pos, x);
		})
	);
}

const steeringHook = (s: Steering, m: Loaded, promptLength: number) =>
	(s as unknown as { hook(m: Loaded, n: number): Promise<ResidualHook | undefined> }).hook(m, promptLength);

describe("scoped steering on stories260K (prefill, then one token a step), against Neuronpedia's formulas and the reference forward", () => {
	// [what, the entry, steer BOS, the positions it must steer (prompt of P tokens, then 4 decoded)]
	const cases: [string, Omit<SteerFeature, 'feature' | 'vector'>, boolean, (P: number) => number[]][] = [
		[
			'add at listed positions (BOS listed, so steered)',
			{ mode: 'add', value: 3, normalize: false, scope: { kind: 'positions', positions: [0, 3, 9, 10] } },
			false,
			() => [0, 3, 9, 10]
		],
		[
			'add, generated tokens only',
			{ mode: 'add', value: -2, normalize: true, scope: { kind: 'generated' } },
			false,
			(P) => [P, P + 1, P + 2, P + 3]
		],
		[
			'orthogonal decomposition ×0 (the component removed), prompt only, BOS left',
			{ mode: 'orthogonal', value: 0, normalize: false, scope: { kind: 'prompt' } },
			false,
			(P) => range(1, P)
		],
		[
			'orthogonal decomposition ×2.5, from token 5 on',
			{ mode: 'orthogonal', value: 2.5, normalize: false, scope: { kind: 'from', n: 5 } },
			true,
			(P) => range(5, P + 4)
		],
		['projection cap, every position with BOS', { mode: 'cap', value: NaN, normalize: false }, true, (P) => range(0, P + 4)]
	];
	for (const [what, entry, steerSpecial, expected] of cases)
		it(what, { timeout: 60_000 }, async () => {
			const { session, m, ids, clean } = await open();
			const P = ids.length;
			const want = new Set(expected(P));
			// The cap sits under every clean projection (so each row in scope is moved by it).
			const value =
				entry.mode === 'cap'
					? Math.min(...clean.rows.map((h) => h.reduce((a, x, i) => a + x * vec[i], 0) / Math.hypot(...vec))) - 0.5
					: entry.value;
			const v: SteeringVector = {
				id: 'scope1',
				name: 't',
				model: m.info.id,
				hook: HOOK,
				values: vec,
				positive: ['a'],
				negative: ['b'],
				createdAt: ''
			};
			saved.set(v.id, v);
			const steering = new Steering(session);
			await steering.set({ steerSpecial, features: [{ ...entry, value, feature: -1, vector: v.id }] });
			const hook = await session.locked(() => steeringHook(steering, m, P));
			const steered = await run(m, ids, hook);
			const dir = entry.mode === 'add' && entry.normalize ? vec.map((x) => x / Math.hypot(...vec)) : vec;
			const edited = (pos: number, h: Float32Array) => (want.has(pos) ? neuronpedia(entry.mode, value, h, dir) : h);
			let outside = 0;
			let inside = 0;
			let minChange = Infinity;
			for (let pos = 0; pos < P + 4; pos++) {
				const err = maxAbsDiff(steered.rows[pos], edited(pos, clean.rows[pos]));
				if (want.has(pos)) {
					inside = Math.max(inside, err);
					minChange = Math.min(minChange, maxAbsDiff(steered.rows[pos], clean.rows[pos]));
				} else outside = Math.max(outside, err);
			}
			const ref = reference(ids, (pos, x) => x.set(edited(pos, x)));
			const logitsErr = Math.max(...ref.map((r, pos) => maxAbsDiff(steered.logits[pos], r)));
			console.log(
				`${what}: positions ${[...want].join(',')} of ${P}+4; hook rows outside the scope |steered − clean| ${outside.toExponential(1)}, inside |steered − Neuronpedia's formula| ${inside.toExponential(1)} (smallest change ${minChange.toExponential(1)}); logits vs reference ${logitsErr.toExponential(1)}`
			);
			expect(outside).toBe(0); // untouched rows are the unsteered run's, bit for bit
			expect(inside).toBeLessThan(1e-5);
			expect(minChange).toBeGreaterThan(Math.max(1e-4, 100 * inside)); // and every row in scope did move
			expect(logitsErr).toBeLessThan(1e-4);
		});

	it(
		'the next-token table: a setup steering generated tokens only leaves it as it is; steering the prompt changes it',
		{ timeout: 60_000 },
		async () => {
			const { session, m } = await open();
			const steering = new Steering(session);
			saved.set('scope2', {
				id: 'scope2',
				name: 't',
				model: m.info.id,
				hook: HOOK,
				values: vec,
				positive: ['a'],
				negative: ['b'],
				createdAt: ''
			});
			const entry = { feature: -1, vector: 'scope2', mode: 'add' as const, value: 6, normalize: true };
			await steering.set({ steerSpecial: false, features: [{ ...entry, scope: { kind: 'generated' } }] });
			const gen = await steering.nextTokenTable(PROMPT, 5);
			expect(gen.steered).toEqual(gen.default);
			await steering.set({ steerSpecial: false, features: [{ ...entry, scope: { kind: 'prompt' } }] });
			const prompt = await steering.nextTokenTable(PROMPT, 5);
			expect(prompt.default).toEqual(gen.default);
			expect(
				maxAbsDiff(
					prompt.steered.map((x) => x.value),
					prompt.default.map((x) => x.value)
				)
			).toBeGreaterThan(1e-3);
		}
	);

	it('entries no forward can apply are refused in words', async () => {
		const { session } = await open();
		const steering = new Steering(session);
		await steering.set({ steerSpecial: false, features: [{ feature: -1, vector: 'scope2', mode: 'clamp', value: 1, normalize: false }] });
		await expect(steering.nextTokenTable(PROMPT)).rejects.toThrow(/saved vector has no activation to clamp/);
		await steering.set({
			steerSpecial: false,
			features: [{ feature: -1, vector: 'scope2', mode: 'add', value: 1, normalize: false, scope: { kind: 'positions', positions: [] } }]
		});
		await expect(steering.nextTokenTable(PROMPT)).rejects.toThrow(/list of positions that is empty/);
	});
});

function range(a: number, b: number) {
	return Array.from({ length: b - a }, (_, i) => a + i);
}

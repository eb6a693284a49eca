// Fuzz: trained-run checkpoints read back from IndexedDB (store/checkpoint-record.ts). A valid
// record for each architecture, put through structuredClone as IndexedDB stores it, then one value
// at a time made hostile: a number out of range, a typed array of the wrong kind or length, a
// missing field, a BigInt, a cycle, an object whose toString is not a function. The validator
// accepts the valid records and refuses every broken one with a message, never a TypeError, before
// any element is read.
import { afterAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { checkpointFromDb } from '../../../src/lib/engine/store/checkpoint-record';
import { LoupeError } from '../../../src/lib/engine/errors';
import { summarizeRun, toSaeLens } from '../../../src/lib/engine/train/training-run';
import { fuzz, runCase, Tally } from '../../fuzz/harness';

const tally = new Tally('trained-run checkpoints (IndexedDB)');
afterAll(() => console.log(tally.line()));

/** A checkpoint as train-loop.ts saves one after `step` steps, written out field by field. */
function record(arch: 'topk' | 'relu' | 'jumprelu', d = 4, n = 6, step = 3): Record<string, unknown> {
	const lens = arch === 'jumprelu' ? [d * n, n, n * d, d, n] : [d * n, n, n * d, d];
	const f = (len: number, x: number) => Float32Array.from({ length: len }, (_, i) => Math.sin(i + x));
	const params: Record<string, Float32Array> = { wEnc: f(d * n, 1), bEnc: f(n, 2), wDec: f(n * d, 3), bDec: f(d, 4) };
	if (arch === 'jumprelu') params.logThreshold = f(n, 5);
	return {
		id: 'run-abc',
		cfg: {
			name: 'SAE blocks.2.hook_resid_pre',
			model: 'stories260K',
			hook: 'blocks.2.hook_resid_pre',
			arch,
			width: n,
			k: 2,
			auxCoeff: 0.03,
			l1: 5,
			l0: 0.1,
			bandwidth: 0.1,
			threshold: 1,
			tokens: 640,
			batch: 64,
			lr: 0.004,
			stories: 4,
			storyTokens: 40,
			seed: 1,
			checkpointEvery: 10
		},
		dIn: d,
		status: 'paused',
		phase: 'training',
		step,
		steps: 10,
		params,
		adam: { t: step, m: lens.map((l) => f(l, 6)), v: lens.map((l) => f(l, 7)) },
		history: [{ step: 1, tokens: 64, mse: 0.5, nmse: 0.4, explainedVariance: 0.6, l0: 2, dead: 0 }],
		ce: [{ clean: 1, spliced: 1.2, zeroAblated: 5, recovered: 0.95, step: 3 }],
		fires: new Float64Array(n),
		sampled: 64,
		sinceFired: new Uint32Array(n),
		scale: 1.5,
		corpus: [[1, 5, 9]],
		corpusDone: true,
		updatedAt: '2026-12-01T10:00:00.000Z',
		createdAt: '2026-12-01T09:00:00.000Z'
	};
}

type Path = (string | number)[];
function paths(v: unknown, at: Path = [], out: Path[] = []): Path[] {
	out.push(at);
	if (ArrayBuffer.isView(v)) return out;
	if (Array.isArray(v)) v.slice(0, 6).forEach((x, i) => paths(x, [...at, i], out));
	else if (v && typeof v === 'object') for (const k of Object.keys(v)) paths((v as Record<string, unknown>)[k], [...at, k], out);
	return out;
}

const cyclic = () => {
	const o: Record<string, unknown> = {};
	o.self = o;
	return o;
};
/** What a structured clone can hold that a checkpoint field should not. */
const hostile: fc.Arbitrary<() => unknown> = fc.oneof(
	fc.constantFrom<() => unknown>(
		() => undefined,
		() => null,
		() => 0,
		() => -1,
		() => 0.5,
		() => NaN,
		() => Infinity,
		() => 2 ** 53 + 2,
		() => 2 ** 31,
		() => 1e12,
		() => '',
		() => '7',
		() => '<img src=x onerror=alert(1)>',
		() => true,
		() => [],
		() => [null],
		() => ({}),
		() => ({ toString: 1, valueOf: 1 }),
		() => 10n,
		() => new Date(0),
		() => new Map([[1, 2]]),
		cyclic,
		() => new Float32Array(0),
		() => new Float32Array(5),
		() => new Float64Array(6),
		() => new Uint32Array(6),
		() => new Uint8Array(24),
		() => new ArrayBuffer(24)
	),
	fc.integer().map((n) => () => n),
	fc.double().map((n) => () => n),
	fc.string({ maxLength: 12 }).map((s) => () => s)
);

/** One field of a valid record replaced, deleted, or one typed array cut short; through structuredClone. */
const mutated = fc.constantFrom('topk' as const, 'relu' as const, 'jumprelu' as const).chain((arch) => {
	const base = record(arch);
	const all = paths(base);
	return fc.oneof(
		fc.constant({ value: structuredClone(base), how: `a valid ${arch} record` }),
		fc.tuple(fc.constantFrom(...all), hostile).map(([p, v]) => {
			const copy = structuredClone(base);
			if (!p.length) return { value: structuredClone(v()), how: 'the record replaced' };
			let at: Record<string | number, unknown> = copy;
			for (const k of p.slice(0, -1)) at = at[k] as Record<string | number, unknown>;
			at[p[p.length - 1]] = v();
			return { value: structuredClone(copy), how: `${p.join('.')} replaced` };
		}),
		fc.constantFrom(...all.filter((p) => p.length)).map((p) => {
			const copy = structuredClone(base);
			let at: Record<string | number, unknown> = copy;
			for (const k of p.slice(0, -1)) at = at[k] as Record<string | number, unknown>;
			delete at[p[p.length - 1]];
			return { value: structuredClone(copy), how: `${p.join('.')} deleted` };
		}),
		fc.tuple(fc.constantFrom(...all.filter((p) => p.length)), fc.nat({ max: 30 })).map(([p, len]) => {
			const copy = structuredClone(base);
			let at: Record<string | number, unknown> = copy;
			for (const k of p.slice(0, -1)) at = at[k] as Record<string | number, unknown>;
			const v = at[p[p.length - 1]];
			if (ArrayBuffer.isView(v)) at[p[p.length - 1]] = (v as Float32Array).slice(0, len);
			return { value: structuredClone(copy), how: `${p.join('.')} cut to ${len}` };
		})
	);
});

describe('fuzz: trained-run checkpoints read back from IndexedDB', () => {
	it('the valid records of every architecture, and a run paused before training began, read', () => {
		for (const arch of ['topk', 'relu', 'jumprelu'] as const) expect(checkpointFromDb(structuredClone(record(arch))).cfg.arch).toBe(arch);
		const writing = { ...record('topk', 4, 6, 0), params: null, phase: 'writing', adam: { t: 0, m: [], v: [] } };
		expect(checkpointFromDb(structuredClone(writing)).params).toBeNull();
	});

	it('one value at a time made hostile', () => {
		// What the validator accepts, the run list and the SAELens export use without a crash.
		const use = (value: unknown) => {
			const cp = checkpointFromDb(value, 'run-abc');
			summarizeRun(cp);
			if (cp.params) toSaeLens(cp);
		};
		fuzz(tally, mutated, ({ value }) => runCase(4096, () => use(value)), 1500);
	});

	// The refusals a reader needs, as plain cases.
	it('a W_enc shorter than d_in × width is named with both lengths', () => {
		const r = structuredClone(record('topk'));
		(r.params as Record<string, unknown>).wEnc = new Float32Array(5);
		expect(() => checkpointFromDb(r)).toThrow(LoupeError);
		expect(() => checkpointFromDb(r)).toThrow(
			'The training run "run-abc" stored in this browser is damaged: its wEnc holds 5 numbers, not 24.'
		);
	});

	it('a width of 2³¹ latents is refused before anything is read', () => {
		const r = structuredClone(record('relu'));
		(r.cfg as Record<string, unknown>).width = 2 ** 31;
		expect(() => checkpointFromDb(r)).toThrow(/larger than any SAE a tab can train/);
	});

	it('a step past the run, and trained steps without parameters, are refused', () => {
		expect(() => checkpointFromDb({ ...record('topk'), step: 11 })).toThrow(/its step 11 is not between 0 and 10/);
		expect(() => checkpointFromDb({ ...record('topk'), params: null })).toThrow(/has trained steps but no parameters/);
	});
});

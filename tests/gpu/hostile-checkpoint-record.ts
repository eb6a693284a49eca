// A TopK run's checkpoint for the kill-mid-write test, large enough (about 3 MB: d_in 64, width
// 2048, Adam's moments) that writing it takes a while, with every number derived from its step so
// that a record read back can be told whole (every element its step's) from a mix of two writes.
import type { TrainCheckpoint } from '../../src/lib/engine/train/training-run';

export const KILL_RUN_ID = 'run-killed';
const D = 64;
const N = 2048;

/** Element i of array `k` of the checkpoint at `step`. */
export const cell = (step: number, k: number, i: number) => step + k / 16 + (i % 97) / 1024;

const f32 = (step: number, k: number, n: number) => Float32Array.from({ length: n }, (_, i) => cell(step, k, i));

export function killCheckpoint(step: number): TrainCheckpoint {
	const lens = [D * N, N, N * D, D];
	const arrays = (base: number) => lens.map((n, j) => f32(step, base + j, n));
	const [wEnc, bEnc, wDec, bDec] = arrays(0);
	return {
		id: KILL_RUN_ID,
		cfg: {
			name: 'SAE blocks.2.hook_resid_pre',
			model: 'stories260K',
			hook: 'blocks.2.hook_resid_pre',
			arch: 'topk',
			width: N,
			k: 16,
			auxCoeff: 0.03125,
			l1: 5,
			tokens: 100_000,
			batch: 256,
			lr: 0.004,
			stories: 4,
			storyTokens: 40,
			seed: 1,
			checkpointEvery: 2
		},
		dIn: D,
		status: 'running',
		phase: 'training',
		step,
		steps: 1000,
		params: { wEnc, bEnc, wDec, bDec },
		adam: { t: step, m: arrays(4), v: arrays(8) },
		history: [{ step, tokens: step * 256, mse: 0.5, nmse: 0.4, explainedVariance: 0.6, l0: 16, dead: 0, aux: 0.1 }],
		ce: [],
		fires: Float64Array.from({ length: N }, (_, i) => step + i),
		sampled: step * 256,
		sinceFired: new Uint32Array(N).fill(step),
		scale: 1.25,
		corpus: [[1, 2, 3]],
		createdAt: '2026-12-01T00:00:00.000Z',
		updatedAt: new Date(Date.UTC(2026, 11, 1, 0, 0, step)).toISOString()
	} as unknown as TrainCheckpoint;
}

/** The step whose checkpoint `cp` wholly is, or a description of the first number that belongs to none. */
export function wholeStep(cp: TrainCheckpoint): number | string {
	const s = cp.step;
	const p = cp.params!;
	const arrays = [p.wEnc, p.bEnc, p.wDec, p.bDec, ...cp.adam.m, ...cp.adam.v] as Float32Array[];
	for (const [k, a] of arrays.entries())
		for (let i = 0; i < a.length; i++)
			if (a[i] !== Math.fround(cell(s, k, i))) return `array ${k} element ${i} is ${a[i]}, not step ${s}'s ${Math.fround(cell(s, k, i))}`;
	if (cp.adam.t !== s || cp.sampled !== s * 256 || cp.fires[7] !== s + 7 || cp.sinceFired![9] !== s || cp.history[0].step !== s)
		return `its counters are not all step ${s}'s`;
	return s;
}

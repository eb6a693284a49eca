// Transcoder checkpoints read back from IndexedDB (store/checkpoint-record.ts): a transcoder with a
// skip connection keeps W_skip [d_out, d_in] (d_out = d_in) in its parameters and its Adam moments
// apart (adamSkip); the trainer sizes GPU buffers by them, so their lengths are checked like every
// other, and a skip connection the settings do not ask for is refused.
import { expect, it } from 'vitest';
import { checkpointFromDb } from '../../src/lib/engine/store/checkpoint-record';

const d = 4;
const n = 6;
const f = (len: number) => new Float32Array(len).fill(0.5);
const lens = [d * n, n, n * d, d];

function transcoderRecord(over: Record<string, unknown> = {}) {
	return {
		id: 'run-tc',
		cfg: {
			name: 'Transcoder blocks.1',
			model: 'stories260K',
			hook: 'blocks.1.hook_mlp_in',
			kind: 'transcoder',
			skip: true,
			arch: 'topk',
			width: n,
			k: 2,
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
		step: 3,
		steps: 10,
		params: { wEnc: f(d * n), bEnc: f(n), wDec: f(n * d), bDec: f(d), wSkip: f(16) },
		adam: { t: 3, m: lens.map(f), v: lens.map(f) },
		adamSkip: { m: f(16), v: f(16) },
		history: [],
		ce: [],
		fires: new Float64Array(n),
		sampled: 64,
		scale: 1.5,
		scaleOut: 2,
		updatedAt: '2026-12-01T10:00:00.000Z',
		createdAt: '2026-12-01T10:00:00.000Z',
		...over
	};
}

const refusal = (r: unknown) => {
	try {
		checkpointFromDb(structuredClone(r));
	} catch (e) {
		return (e as Error).message.replace('The training run "run-tc" stored in this browser is damaged: ', '');
	}
	return 'accepted';
};

it('a transcoder checkpoint with its skip connection reads back; wrong or unasked-for W_skip is refused by name', () => {
	const ok = transcoderRecord();
	expect(refusal(ok)).toBe('accepted');
	expect(refusal(transcoderRecord({ params: { ...ok.params, wSkip: f(15) } }))).toBe('its wSkip holds 15 numbers, not 16.');
	expect(refusal(transcoderRecord({ params: { ...ok.params, wSkip: undefined } }))).toBe('its wSkip is not a Float32Array.');
	expect(refusal(transcoderRecord({ adamSkip: { m: f(16), v: f(4) } }))).toBe('its Adam moment v of wSkip holds 4 numbers, not 16.');
	expect(refusal(transcoderRecord({ cfg: { ...ok.cfg, skip: false } }))).toBe(
		'it has a skip connection (wSkip) its settings do not ask for.'
	);
	expect(refusal(transcoderRecord({ cfg: { ...ok.cfg, kind: 'crosscoder' } }))).toBe(
		'its kind "crosscoder" is neither an SAE nor a transcoder.'
	);
	expect(refusal(transcoderRecord({ scaleOut: -1 }))).toBe('its target scale is not a positive number.');
	// Without the skip connection: no W_skip, no moments for it.
	const plain = transcoderRecord({ cfg: { ...ok.cfg, skip: false }, params: { ...ok.params, wSkip: undefined }, adamSkip: undefined });
	expect(refusal(plain)).toBe('accepted');
	expect(refusal({ ...plain, adamSkip: { m: f(16), v: f(16) } })).toBe(
		'it has optimiser state for a skip connection its settings do not ask for.'
	);
});

import { describe, expect, it } from 'vitest';
import { transcoderFromSae } from '../../src/lib/engine/attribution/from-sae';
import { activate, preActivations, reconstruct } from '../../src/lib/engine/attribution/transcoder';
import type { SaeConfig, SaeWeights } from '../../src/lib/engine/sae/config';
import { seededRandom } from '../../src/lib/engine/sample/prng';

const [dIn, dSae] = [6, 10];
const rnd = seededRandom(3);
const u = (n: number) => Float32Array.from({ length: n }, () => rnd() * 2 - 1);
const weights: SaeWeights = {
	wEnc: u(dIn * dSae),
	bEnc: u(dSae),
	wDec: u(dSae * dIn),
	bDec: u(dIn),
	threshold: Float32Array.from({ length: dSae }, () => rnd() * 0.3),
	wSkip: u(dIn * dIn)
};
const cfg = (over: Partial<SaeConfig> = {}): SaeConfig => ({
	architecture: 'jumprelu',
	dIn,
	dSae,
	dOut: dIn,
	hookName: 'blocks.2.hook_mlp_in',
	hookNameOut: 'blocks.2.hook_mlp_out',
	skip: true,
	applyBDecToInput: false,
	normalizeActivations: 'expected_average_only_in',
	normScale: 2,
	normScaleOut: 0.5,
	centerInput: false,
	format: 'test',
	dtype: 'F32',
	name: 'tc',
	...over
});

describe('transcoders from the SAE loaders and the trainer', () => {
	it("folds the input and output scales: the trained transcoder's forward, written out, is reproduced", () => {
		const t = transcoderFromSae(cfg(), weights);
		expect(t.layer).toBe(2);
		const x = Array.from(u(dIn));
		// out = (σ((x·s)·W_enc + b_enc)·W_dec + b_dec + (x·s)·W_skipᵀ) / s_out, JumpReLU σ
		const xs = x.map((v) => v * 2);
		const pre = Array.from({ length: dSae }, (_, f) => xs.reduce((a, v, i) => a + v * weights.wEnc[i * dSae + f], weights.bEnc[f]));
		const act = pre.map((p, f) => (p > weights.threshold![f] && p > 0 ? p : 0));
		const want = Array.from({ length: dIn }, (_, j) => {
			let o = weights.bDec[j];
			act.forEach((a, f) => (o += a * weights.wDec[f * dIn + j]));
			xs.forEach((v, i) => (o += v * weights.wSkip![j * dIn + i]));
			return o / 0.5;
		});
		const got = reconstruct(t, x, activate(t, preActivations(t, x)));
		want.forEach((v, j) => expect(got[j]).toBeCloseTo(v, 5));
		expect(act.some((a) => a > 0)).toBe(true);
	});

	it('keeps the k largest for TopK', () => {
		const t = transcoderFromSae(cfg({ architecture: 'topk', k: 3, normalizeActivations: 'none' }), weights);
		const x = Array.from(u(dIn));
		const act = activate(t, preActivations(t, x));
		expect(act.filter((a) => a > 0).length).toBeLessThanOrEqual(3);
	});

	it('refuses what cannot replace one MLP, saying why', () => {
		expect(() => transcoderFromSae(cfg({ hookNameOut: undefined, hookName: 'blocks.2.hook_resid_pre' }), weights)).toThrow(/is an SAE/);
		expect(() => transcoderFromSae(cfg({ hookNameOut: 'blocks.3.hook_mlp_out' }), weights)).toThrow(
			/not one layer's hook_mlp_in to its hook_mlp_out/
		);
		expect(() => transcoderFromSae(cfg({ normalizeActivations: 'layer_norm' }), weights)).toThrow(
			/normalises its input per token \(layer_norm\)/
		);
	});
});

// The train page's words for transcoder runs (train-view.ts), against text written by hand: an
// all-layers run's records gathered into one row (by layer, newest row first), what it trains, its
// figures a line a layer with the CE loss recovered with all its MLPs replaced, the done line's CE
// part; and the records a transcoder run keeps (training-run.ts: the shape, the layer, the export).
import { describe, expect, it } from 'vitest';
import { ceLine, runFigures, runRows, runWhat } from '../../src/routes/train/train-view';
import {
	defaultTrainConfig,
	newCheckpoint,
	shapeOf,
	summarizeRun,
	toSaeLens,
	type TrainCheckpoint
} from '../../src/lib/engine/train/training-run';
import { readSaeLens } from '../../src/lib/engine/sae/formats/saelens';

const base = {
	...defaultTrainConfig('stories260K', 'blocks.0.hook_mlp_in'),
	kind: 'transcoder' as const,
	skip: true,
	arch: 'relu' as const,
	width: 8
};

function record(id: string, layer: number | null, group?: string, ev = 0.5, createdAt = '2026-01-01'): TrainCheckpoint {
	const hook = layer === null ? 'blocks.2.hook_resid_pre' : `blocks.${layer}.hook_mlp_in`;
	const cfg = layer === null ? { ...defaultTrainConfig('stories260K', hook), width: 8 } : { ...base, hook, group };
	const cp = newCheckpoint(id, cfg, 4, 10, null);
	cp.createdAt = createdAt;
	cp.history.push({ step: 10, tokens: 2560, mse: 1, nmse: 1 - ev, explainedVariance: ev, l0: 3, dead: 0.25 });
	cp.ce.push({ step: 10, clean: 1, spliced: 2, zeroAblated: 5, recovered: 0.75, replaced: group ? 2 : 1, explainedVariance: ev });
	return cp;
}

describe('transcoder runs on the train page', () => {
	it('gathers an all-layers run into one row, by layer, and says what it trains and what it reached', () => {
		// As the list comes (newest first): an SAE, then the two layers of a group, out of order.
		const runs = [record('run-s', null), record('run-g.L1', 1, 'run-g', 0.4), record('run-g.L0', 0, 'run-g', 0.6), record('run-t', 3)].map(
			summarizeRun
		);
		const rows = runRows(runs);
		expect(rows.map((r) => r.key)).toEqual(['run-s', 'run-g', 'run-t']);
		expect(rows[1].layers.map((r) => r.layer)).toEqual([0, 1]);
		expect(rows[1].lead.id).toBe('run-g.L0');
		expect(runWhat(rows[0])).toBe('stories260K · blocks.2.hook_resid_pre · topk k=16 · 8 latents');
		expect(runWhat(rows[1])).toBe('stories260K · transcoders at 2 layers (hook_mlp_in → hook_mlp_out) · relu + W_skip · 8 latents');
		expect(runWhat(rows[2])).toBe('stories260K · transcoder blocks.3.hook_mlp_in → blocks.3.hook_mlp_out · relu + W_skip · 8 latents');
		expect(runFigures(rows[1])).toBe(
			'layer 0: EV 60.0% · L0 3.0 · dead 25%\nlayer 1: EV 40.0% · L0 3.0 · dead 25%\nCE rec. 75% (2 MLPs replaced)'
		);
		expect(runFigures(rows[2])).toBe('EV 50.0% · L0 3.0 · dead 25% · CE rec. 75%');
		const ce = { clean: 1, spliced: 2, zeroAblated: 5, recovered: 0.75 };
		expect(ceLine({ ...ce, replaced: 5 }, true)).toBe(
			'CE loss recovered 75.0% with all 5 MLPs replaced (clean 1.000, with the transcoders 2.000, zero-ablated 5.000).'
		);
		expect(ceLine({ ...ce, replaced: 1 }, true)).toBe(
			'CE loss recovered 75.0% with the MLP replaced (clean 1.000, with the transcoder 2.000, zero-ablated 5.000).'
		);
		expect(ceLine(ce, false)).toBe('CE loss recovered 75.0% (clean 1.000, with the SAE 2.000, zero-ablated 5.000).');
	});

	it("keeps a transcoder's shape and exports its layer's hooks, scales folded", () => {
		const cp = record('run-g.L1', 1, 'run-g');
		expect(shapeOf(cp.cfg, 4)).toMatchObject({ d: 4, dOut: 4, skip: true, n: 8 });
		expect(summarizeRun(cp)).toMatchObject({ kind: 'transcoder', group: 'run-g', layer: 1 });
		// Parameters trained on x × 2 → y × 4: the files run on the raw hooks (W_enc·2, W_dec/4, b_dec/4, W_skip·2/4).
		const f = (n: number, v: number) => new Float32Array(n).fill(v);
		cp.params = { wEnc: f(32, 1), bEnc: f(8, 0.5), wDec: f(32, 1), bDec: f(4, 1), wSkip: f(16, 1) };
		cp.scale = 2;
		cp.scaleOut = 4;
		const { cfgJson, safetensors } = toSaeLens(cp);
		const json = JSON.parse(cfgJson);
		expect(json).toMatchObject({ architecture: 'skip_transcoder', d_out: 4 });
		expect(json.metadata).toMatchObject({ hook_name: 'blocks.1.hook_mlp_in', hook_name_out: 'blocks.1.hook_mlp_out' });
		const { cfg, weights } = readSaeLens(cfgJson, safetensors.slice().buffer as ArrayBuffer);
		expect(cfg).toMatchObject({ hookName: 'blocks.1.hook_mlp_in', hookNameOut: 'blocks.1.hook_mlp_out', dOut: 4, skip: true });
		expect([weights.wEnc[0], weights.wDec[0], weights.bDec[0], weights.wSkip![0], weights.bEnc[0]]).toEqual([2, 0.25, 0.25, 0.5, 0.5]);
	});
});

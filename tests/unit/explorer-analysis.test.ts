// The explorer's analysis of a prompt, through the engine's own session in Node (wasm) on
// stories260K with a ReLU SAE at blocks.1.hook_resid_pre: the features that fire on the text (max,
// sum after BOS, the BOS activation) and a card's activations across the prompt, both against a plain
// TS ReLU encoder on the reference forward; opening cards runs no model (they reuse the analysis);
// an empty prompt is refused instead of measuring a reconstruction over no tokens.
import './engine-in-node';
import { describe, expect, it, vi } from 'vitest';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { ModelSession } from '../../src/lib/engine/model/session';
import { SaeExplorer } from '../../src/lib/engine/sae/explorer';
import { readLlama2cCheckpoint } from '../../src/lib/engine/model/llama2c/checkpoint';
import { ReferenceLlama } from '../../src/lib/engine/model/llama2c/reference-forward';
import { stories260KDir } from '../fixtures';
import { maxAbsDiff } from '../numeric';

// Node has no IndexedDB: no corpus runs, no labels.
vi.mock('../../src/lib/engine/store/db', async (original) => ({
	...(await original<object>()),
	latestCorpusRun: async () => undefined,
	getLabel: async () => undefined
}));

const D_IN = 64;
const D_SAE = 16;
const HOOK = 'blocks.1.hook_resid_pre';
const PROMPT = 'Once upon a time there was a cat';

/** A safetensors file by the spec (8-byte header length, JSON header, little-endian F32 data). */
function safetensors(tensors: Record<string, { shape: number[]; data: number[] }>): Uint8Array {
	const header: Record<string, unknown> = {};
	let off = 0;
	for (const [k, t] of Object.entries(tensors)) {
		header[k] = { dtype: 'F32', shape: t.shape, data_offsets: [off, off + 4 * t.data.length] };
		off += 4 * t.data.length;
	}
	const json = Buffer.from(JSON.stringify(header));
	const len = Buffer.alloc(8);
	len.writeBigUInt64LE(BigInt(json.length));
	return new Uint8Array(Buffer.concat([len, json, ...Object.values(tensors).map((t) => Buffer.from(Float32Array.from(t.data).buffer))]));
}

const fileAt = (name: string) => new File([readFileSync(resolve(stories260KDir, name))], name);

describe('the analysis of a prompt', () => {
	it(
		'features on the text and the cards match a plain ReLU encoder on the reference forward; cards run no model',
		{ timeout: 60_000 },
		async () => {
			const session = new ModelSession();
			await session.loadFromFiles([fileAt('stories260K.bin'), fileAt('tok512.bin')]);
			const explorer = new SaeExplorer(session);
			const wEnc = Array.from({ length: D_IN * D_SAE }, (_, i) => 0.6 * Math.sin(0.41 * i + 2));
			const bEnc = Array.from({ length: D_SAE }, (_, j) => 0.1 - 0.05 * j);
			const cfg = { d_in: D_IN, d_sae: D_SAE, hook_name: HOOK, model_name: 'stories260K', dtype: 'float32', architecture: 'standard' };
			await explorer.loadFromFiles([
				new File([JSON.stringify({ ...cfg, apply_b_dec_to_input: false, normalize_activations: 'none' })], 'cfg.json'),
				new File(
					[
						safetensors({
							W_enc: { shape: [D_IN, D_SAE], data: wEnc },
							W_dec: { shape: [D_SAE, D_IN], data: Array(D_SAE * D_IN).fill(0.01) },
							b_enc: { shape: [D_SAE], data: bEnc },
							b_dec: { shape: [D_IN], data: Array(D_IN).fill(0) }
						}) as Uint8Array<ArrayBuffer>
					],
					'sae_weights.safetensors'
				)
			]);

			const a = await explorer.analyze(PROMPT, 4);
			const ids = a.tokens.map((t) => t.id);
			// The reference: the residual entering layer 1 at every position, ReLU(x · W_enc + b_enc) in float64.
			const ckpt = readLlama2cCheckpoint(readFileSync(resolve(stories260KDir, 'stories260K.bin')).buffer as ArrayBuffer, 'stories260K.bin');
			const ref = new ReferenceLlama(ckpt);
			const acts = ids.map((id) => {
				ref.step(id);
				const x = ref.residual[1];
				return Array.from({ length: D_SAE }, (_, j) => {
					let pre = bEnc[j];
					for (let i = 0; i < D_IN; i++) pre += x[i] * wEnc[i * D_SAE + j];
					return Math.max(0, pre);
				});
			});
			const col = (f: number) => acts.map((r) => r[f]);
			const expected = Array.from({ length: D_SAE }, (_, f) => {
				const rest = col(f).slice(1);
				return { max: Math.max(0, ...rest), sum: rest.reduce((s, v) => s + v, 0), first: col(f)[0] };
			});
			const got = Array.from({ length: D_SAE }, (_, f) => a.features.find((x) => x.id === f) ?? { max: 0, sum: 0, first: 0 });
			for (const key of ['max', 'sum', 'first'] as const) {
				const d = maxAbsDiff(
					got.map((x) => x[key]),
					expected.map((x) => x[key])
				);
				console.log(`features on the text: max |Δ ${key}| ${d.toExponential(2)}`);
				expect(d).toBeLessThan(1e-4);
			}
			expect(a.features.length).toBeGreaterThan(2);
			expect(a.features.map((x) => x.max)).toEqual([...a.features.map((x) => x.max)].sort((x, y) => y - x));
			expect(a.reconstruction!.tokens).toBe(ids.length - 1);

			// Cards reuse the analysis: no forward pass, and each card's activations are the reference's column.
			const runner = session.requireModel().runner;
			const forward = vi.spyOn(runner, 'forward');
			for (const f of a.features.slice(0, 3).map((x) => x.id)) {
				const card = await explorer.feature(f, 3);
				expect(maxAbsDiff(card.activations, col(f))).toBeLessThan(1e-4);
			}
			expect(forward).not.toHaveBeenCalled();
			forward.mockRestore();

			// An empty prompt is refused (it measured an MSE of 0 over no tokens).
			await expect(explorer.analyze('', 4)).rejects.toThrow('There is no text to analyse: the prompt is empty.');
		}
	);
});

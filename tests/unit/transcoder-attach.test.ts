// A transcoder attached to stories260K through the engine's session in Node (wasm): the model is cut
// at its input and output hooks (blocks.1.hook_mlp_in, blocks.1.hook_mlp_out), the vectors read
// there equal the plain TS reference forward's, and the reconstruction the explorer reports (the
// fraction of MLP-output variance explained) is the one a plain loop over the reference's vectors gives.
import './engine-in-node';
import { describe, expect, it, vi } from 'vitest';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { ModelSession } from '../../src/lib/engine/model/session';
import { attachSae } from '../../src/lib/engine/sae/attach';
import { hookRows, transcoderReconstruction } from '../../src/lib/engine/sae/transcoder-recon';
import { Transcoder } from '../../src/lib/engine/sae/transcoder';
import { readLlama2cCheckpoint } from '../../src/lib/engine/model/llama2c/checkpoint';
import { ReferenceLlama } from '../../src/lib/engine/model/llama2c/reference-forward';
import { seededRandom } from '../../src/lib/engine/sample/prng';
import { stories260KDir } from '../fixtures';
import { maxAbsDiff } from '../numeric';

vi.mock('../../src/lib/engine/store/db', async (original) => ({ ...(await original<object>()), latestCorpusRun: async () => undefined }));

const D = 64;
const N = 16;

/** safetensors by the spec (8-byte header length, JSON header, little-endian F32 data), not Loupe's writer. */
function safetensors(tensors: Record<string, { shape: number[]; data: ArrayLike<number> }>): ArrayBuffer {
	const header: Record<string, unknown> = {};
	let off = 0;
	for (const [k, t] of Object.entries(tensors)) {
		header[k] = { dtype: 'F32', shape: t.shape, data_offsets: [off, off + 4 * t.data.length] };
		off += 4 * t.data.length;
	}
	const json = Buffer.from(JSON.stringify(header));
	const len = Buffer.alloc(8);
	len.writeBigUInt64LE(BigInt(json.length));
	const all = Buffer.concat([len, json, ...Object.values(tensors).map((t) => Buffer.from(Float32Array.from(t.data).buffer))]);
	return all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength) as ArrayBuffer;
}

describe('a transcoder attached to stories260K', () => {
	it('cuts at both hooks and reports the variance of hook_mlp_out it explains', { timeout: 120_000 }, async () => {
		const fileAt = (name: string) => new File([readFileSync(resolve(stories260KDir, name))], name);
		const session = new ModelSession();
		await session.loadFromFiles([fileAt('stories260K.bin'), fileAt('tok512.bin')]);
		const r = seededRandom(4);
		const u = (n: number, s: number) => Float32Array.from({ length: n }, () => (r() * 2 - 1) * s);
		const w = { W_enc: u(D * N, 0.3), b_enc: u(N, 0.05), W_dec: u(N * D, 0.1), b_dec: u(D, 0.02), W_skip: u(D * D, 0.05) };
		const cfg = {
			architecture: 'skip_transcoder',
			d_in: D,
			d_sae: N,
			d_out: D,
			dtype: 'float32',
			apply_b_dec_to_input: false,
			normalize_activations: 'none',
			metadata: {
				sae_lens_version: '6.5.0',
				model_name: 'stories260K',
				hook_name: 'blocks.1.hook_mlp_in',
				hook_name_out: 'blocks.1.hook_mlp_out'
			}
		};
		const buffers = {
			cfg: new TextEncoder().encode(JSON.stringify(cfg)).buffer as ArrayBuffer,
			weights: safetensors({
				W_enc: { shape: [D, N], data: w.W_enc },
				W_dec: { shape: [N, D], data: w.W_dec },
				b_enc: { shape: [N], data: w.b_enc },
				b_dec: { shape: [D], data: w.b_dec },
				W_skip: { shape: [D, D], data: w.W_skip }
			})
		};
		const info = await attachSae(
			session,
			[
				{ name: 'cfg.json', buffer: buffers.cfg },
				{ name: 'sae_weights.safetensors', buffer: buffers.weights }
			],
			'test'
		);
		const m = session.requireModel();
		expect(m.info.cutAt).toEqual(['blocks.1.hook_mlp_in', 'blocks.1.hook_mlp_out']);
		expect(info.preprocessing[0]).toMatch(/transcoder.*blocks\.1\.hook_mlp_in.*blocks\.1\.hook_mlp_out/);

		const ids = [1, 403, 261, 400, 292, 261, 428, 350, 301, 269, 259];
		let x: Float32Array | null = null;
		let y: Float32Array | null = null;
		m.runner.reset();
		const { logits } = await m.runner.forward(ids, async (name, residual, rows) => {
			if (name === 'blocks.1.hook_mlp_in') x = await hookRows(null, residual, rows, D);
			if (name === 'blocks.1.hook_mlp_out') y = await hookRows(null, residual, rows, D);
		});
		logits.dispose();
		const got = transcoderReconstruction(Transcoder.fromSae(info.cfg, m.sae!.session.sae.w), x!, y!, ids.length);

		// The reference forward's vectors at the two hooks, and the transcoder's forward as a plain loop.
		const ckpt = readLlama2cCheckpoint(readFileSync(resolve(stories260KDir, 'stories260K.bin')).buffer as ArrayBuffer, 'stories260K.bin');
		const ref = new ReferenceLlama(ckpt);
		const refX = new Float32Array(ids.length * D);
		const refY = new Float32Array(ids.length * D);
		let sse = 0;
		const ys: number[][] = [];
		ids.forEach((id, t) => {
			ref.step(id);
			refX.set(ref.sublayer[1].mlp_in, t * D);
			refY.set(ref.sublayer[1].mlp_out, t * D);
			if (t === 0) return; // BOS left out, as the card does
			const xi = ref.sublayer[1].mlp_in;
			const acts = Array.from({ length: N }, (_, f) => {
				let pre = w.b_enc[f];
				for (let i = 0; i < D; i++) pre += xi[i] * w.W_enc[i * N + f];
				return Math.max(0, pre);
			});
			const yt = Array.from(ref.sublayer[1].mlp_out);
			for (let o = 0; o < D; o++) {
				let p = w.b_dec[o];
				for (let f = 0; f < N; f++) p += acts[f] * w.W_dec[f * D + o];
				for (let i = 0; i < D; i++) p += xi[i] * w.W_skip[o * D + i];
				sse += (yt[o] - p) ** 2;
			}
			ys.push(yt);
		});
		expect(maxAbsDiff(x!, refX)).toBeLessThan(1e-4);
		expect(maxAbsDiff(y!, refY)).toBeLessThan(1e-4);
		const mean = Array.from({ length: D }, (_, o) => ys.reduce((a, v) => a + v[o], 0) / ys.length);
		const sst = ys.reduce((a, v) => a + v.reduce((b, yo, o) => b + (yo - mean[o]) ** 2, 0), 0);
		const want = 1 - sse / sst;
		console.log(`transcoder at blocks.1: variance of hook_mlp_out explained ${got.explainedVariance} (plain loop ${want})`);
		expect(Math.abs(got.explainedVariance! - want)).toBeLessThan(1e-4 * Math.max(1, Math.abs(want)));
		expect(Math.abs(got.mse - sse / (ys.length * D))).toBeLessThan(1e-6 + 1e-4 * got.mse);
	});
});

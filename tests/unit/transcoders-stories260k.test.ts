// Opt-in (LOUPE_TRANSCODER_RUN=1; not in CI): tiny transcoders trained at every layer of stories260K
// (blocks.L.hook_mlp_in → blocks.L.hook_mlp_out) with the TS reference trainer on stories the model
// writes, exported as SAELens files and read back; reports, on held-out stories, each layer's
// fraction of MLP-output variance explained and the CE loss recovered with every MLP replaced
// (clean vs spliced vs every MLP output zeroed), all through the plain reference forward.
//   LOUPE_TRANSCODER_RUN=1 npx vitest run --project unit tests/unit/transcoders-stories260k.test.ts
import { describe, expect, it } from 'vitest';
import { readLlama2cCheckpoint } from '../../src/lib/engine/model/llama2c/checkpoint';
import { ReferenceLlama } from '../../src/lib/engine/model/llama2c/reference-forward';
import {
	adamStep,
	backward,
	forward,
	initParams,
	normalizeDecoderRows,
	type SaeParams,
	type TrainShape
} from '../../src/lib/engine/train/reference';
import { transcoderToSaeLens } from '../../src/lib/engine/train/transcoder-export';
import { readSaeFiles } from '../../src/lib/engine/sae/load';
import { Transcoder } from '../../src/lib/engine/sae/transcoder';
import { seededRandom } from '../../src/lib/engine/sample/prng';
import { readArrayBuffer, stories260KDir } from '../fixtures';

const env = (k: string, d: number) => Number(process.env[k] ?? d);
const arch = (process.env.LOUPE_TC_ARCH ?? 'relu') as TrainShape['arch'];
const WIDTH = env('LOUPE_TC_WIDTH', 256);
const STEPS = env('LOUPE_TC_STEPS', 800);
const STORIES = env('LOUPE_TC_STORIES', 48);
const B = 64;

describe.skipIf(!process.env.LOUPE_TRANSCODER_RUN)('transcoders at every layer of stories260K', () => {
	it('trains, exports and measures them', { timeout: 3_600_000 }, () => {
		const ckpt = readLlama2cCheckpoint(readArrayBuffer(`${stories260KDir}/stories260K.bin`), 'stories260K.bin');
		const c = ckpt.config;
		const d = c.dim;
		const random = seededRandom(1);
		// Stories the model writes (temperature 1, from BOS), 128 tokens each; the last 8 held out.
		const stories: number[][] = [];
		for (let s = 0; s < STORIES + 8; s++) {
			const ref = new ReferenceLlama(ckpt);
			const ids = [1];
			while (ids.length < 128) {
				const logits = ref.step(ids[ids.length - 1]);
				const max = Math.max(...logits);
				const p = logits.map((l) => Math.exp(l - max));
				let u = random() * p.reduce((a, x) => a + x, 0);
				let next = 0;
				while ((u -= p[next]) > 0 && next < p.length - 1) next++;
				if (next === 1) break; // BOS: the story ended
				ids.push(next);
			}
			stories.push(ids);
		}
		const train = stories.slice(0, STORIES);
		const held = stories.slice(STORIES);
		// Paired activations at every layer (BOS left out).
		const pairs = (set: number[][]) => {
			const xs: number[][][] = Array.from({ length: c.nLayers }, () => []);
			const ys: number[][][] = Array.from({ length: c.nLayers }, () => []);
			for (const ids of set) {
				const ref = new ReferenceLlama(ckpt);
				ids.forEach((id, t) => {
					ref.step(id);
					if (t === 0) return;
					for (let l = 0; l < c.nLayers; l++) {
						xs[l].push(Array.from(ref.sublayer[l].mlp_in));
						ys[l].push(Array.from(ref.sublayer[l].mlp_out));
					}
				});
			}
			return { xs, ys };
		};
		const tr = pairs(train);
		const ho = pairs(held);
		console.log(`${tr.xs[0].length} training tokens, ${ho.xs[0].length} held out; ${arch}, width ${WIDTH}, ${STEPS} steps of ${B}`);
		const transcoders: Transcoder[] = [];
		const fve: number[] = [];
		for (let l = 0; l < c.nLayers; l++) {
			const X = tr.xs[l];
			const Y = tr.ys[l];
			const scaleOf = (rows: number[][]) => Math.sqrt(d / (rows.reduce((a, r) => a + r.reduce((b, v) => b + v * v, 0), 0) / rows.length));
			const sIn = scaleOf(X);
			const sOut = scaleOf(Y);
			const s: TrainShape = {
				d,
				n: WIDTH,
				arch,
				k: 16,
				l1: arch === 'relu' ? 1 : 0,
				l0: 0.05,
				bandwidth: 0.05,
				dOut: d,
				skip: arch !== 'topk'
			};
			const mean = new Float32Array(d);
			for (const r of Y) for (let i = 0; i < d; i++) mean[i] += (r[i] * sOut) / Y.length;
			const p: SaeParams = initParams(s, () => (random() + 1) / 2, mean);
			const zeros = () => Object.fromEntries(Object.entries(p).map(([k, v]) => [k, new Float32Array(v.length)])) as unknown as SaeParams;
			const st = { m: zeros(), v: zeros(), t: 0 };
			for (let step = 0; step < STEPS; step++) {
				const x = new Float32Array(B * d);
				const y = new Float32Array(B * d);
				for (let b = 0; b < B; b++) {
					const row = Math.floor(random() * X.length);
					for (let i = 0; i < d; i++) {
						x[b * d + i] = X[row][i] * sIn;
						y[b * d + i] = Y[row][i] * sOut;
					}
				}
				const f = forward(p, s, x, B, false, undefined, undefined, y);
				const lr = step < 50 ? (4e-3 * (step + 1)) / 50 : step > 0.8 * STEPS ? (4e-3 * (STEPS - step)) / (0.2 * STEPS) : 4e-3;
				adamStep(p, backward(p, s, x, B, f), st, lr);
				if (s.arch !== 'relu') normalizeDecoderRows(p, s);
			}
			const { cfgJson, safetensors } = transcoderToSaeLens(
				p,
				s,
				{ in: sIn, out: sOut },
				{ hookName: `blocks.${l}.hook_mlp_in`, hookNameOut: `blocks.${l}.hook_mlp_out` }
			);
			const read = readSaeFiles([
				{ name: 'cfg.json', buffer: new TextEncoder().encode(cfgJson).buffer as ArrayBuffer },
				{ name: 'sae_weights.safetensors', buffer: safetensors.slice().buffer as ArrayBuffer }
			]);
			const tc = Transcoder.fromSae(read.cfg, read.weights);
			transcoders.push(tc);
			// Held-out fraction of MLP-output variance explained, and L0.
			const T = ho.xs[l].length;
			const { out, acts } = tc.forward(Float32Array.from(ho.xs[l].flat()), T);
			const yh = ho.ys[l];
			const ym = Array.from({ length: d }, (_, i) => yh.reduce((a, r) => a + r[i], 0) / T);
			let sse = 0;
			let sst = 0;
			for (let t = 0; t < T; t++)
				for (let i = 0; i < d; i++) {
					sse += (yh[t][i] - out[t * d + i]) ** 2;
					sst += (yh[t][i] - ym[i]) ** 2;
				}
			fve.push(1 - sse / sst);
			const l0 = acts.reduce((a, v) => a + (v > 0 ? 1 : 0), 0) / T;
			console.log(`layer ${l}: variance of hook_mlp_out explained ${(1 - sse / sst).toFixed(3)}, L0 ${l0.toFixed(1)}`);
		}
		// CE with every MLP replaced (each transcoder fed the replaced model's own MLP input), clean, and zeroed.
		const ce = (mode: 'clean' | 'replaced' | 'zero') => {
			let sum = 0;
			let count = 0;
			for (const ids of held) {
				const ref = new ReferenceLlama(ckpt);
				let mlpIn = new Float32Array(d);
				for (let t = 0; t + 1 < ids.length; t++) {
					const logits = ref.step(ids[t], undefined, (l, hook, v) => {
						if (mode === 'clean' || t === 0) return; // BOS as it is
						if (hook === 'mlp_in') mlpIn = v.slice();
						if (hook === 'mlp_out') v.set(mode === 'zero' ? new Float32Array(d) : transcoders[l].forward(mlpIn, 1).out);
					});
					const max = Math.max(...logits);
					const z = logits.reduce((a, x) => a + Math.exp(x - max), 0);
					sum += Math.log(z) + max - logits[ids[t + 1]];
					count++;
				}
			}
			return sum / count;
		};
		const clean = ce('clean');
		const replaced = ce('replaced');
		const zero = ce('zero');
		const recovered = (zero - replaced) / (zero - clean);
		console.log(
			`CE loss: clean ${clean.toFixed(3)}, every MLP replaced ${replaced.toFixed(3)}, every MLP zeroed ${zero.toFixed(3)}: recovered ${(100 * recovered).toFixed(1)} %; variance explained per layer ${fve.map((v) => v.toFixed(3)).join(', ')}`
		);
		expect(recovered).toBeGreaterThan(0.5);
	});
});

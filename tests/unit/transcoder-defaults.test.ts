// The default transcoders the app ships for stories260K (npm run make-defaults -- --transcoders):
// one SAELens transcoder per layer at static/bundled/loupe/stories260K-transcoders/resolve/main/
// blocks.L.hook_mlp_in/ (the path the attribution graph loads), small, read back by Loupe's loader
// and the graph's reader; and the figures metrics.json reports, measured again here with the plain
// TypeScript forward (reference-forward.ts) on the held-out stories (the corpus's last four): each
// layer's fraction of MLP-output variance explained and the CE loss recovered with every MLP replaced
// (opt-in: LOUPE_TRANSCODER_RUN=1 npx vitest run --project unit tests/unit/transcoder-defaults.test.ts).
import { existsSync, readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot, readArrayBuffer, stories260KDir } from '../fixtures';
import { readSaeFiles } from '../../src/lib/engine/sae/load';
import { plainTranscoder, Transcoder } from '../../src/lib/engine/sae/transcoder';
import { readLlama2cCheckpoint } from '../../src/lib/engine/model/llama2c/checkpoint';
import { ReferenceLlama } from '../../src/lib/engine/model/llama2c/reference-forward';
import { heldOutCount } from '../../src/lib/engine/train/estimate';

const dir = resolve(repoRoot, 'static/bundled/loupe/stories260K-transcoders/resolve/main');
const saeDir = resolve(repoRoot, 'static/bundled/loupe/stories260K-saes/resolve/main');
const ab = (b: Buffer) => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;

describe.skipIf(!existsSync(resolve(dir, 'metrics.json')))('the bundled transcoders of stories260K', () => {
	const weights = readLlama2cCheckpoint(readArrayBuffer(`${stories260KDir}/stories260K.bin`), 'stories260K.bin');
	const { nLayers, dim: d } = weights.config;
	const metrics = JSON.parse(readFileSync(resolve(dir, 'metrics.json'), 'utf8'));
	const hooks = Array.from({ length: nLayers }, (_, l) => `blocks.${l}.hook_mlp_in`);

	it('are SAELens transcoders at every layer, small, that Loupe and the graph read', () => {
		let bytes = 0;
		for (const [l, hook] of hooks.entries()) {
			const files = ['cfg.json', 'sae_weights.safetensors'].map((name) => {
				const p = resolve(dir, hook, name);
				bytes += statSync(p).size;
				return { name, buffer: ab(readFileSync(p)) };
			});
			const json = JSON.parse(readFileSync(resolve(dir, hook, 'cfg.json'), 'utf8'));
			expect(json.metadata).toMatchObject({ hook_name: hook, hook_name_out: `blocks.${l}.hook_mlp_out`, model_name: 'stories260K' });
			expect(json).toMatchObject({ d_in: d, d_out: d, architecture: 'jumprelu_skip_transcoder', normalize_activations: 'none' });
			const { cfg, weights: w } = readSaeFiles(files);
			expect(cfg).toMatchObject({ hookName: hook, hookNameOut: `blocks.${l}.hook_mlp_out`, dOut: d, skip: true });
			expect(w.wSkip?.length).toBe(d * d);
			const plain = plainTranscoder(cfg, w);
			expect(plain).toMatchObject({ layer: l, dIn: d, dOut: d });
			expect(plain.threshold?.length).toBe(cfg.dSae);
		}
		console.log(`${hooks.length} transcoders, ${(bytes / 1e6).toFixed(2)} MB`);
		expect(bytes).toBeLessThan(1.5e6);
	});

	// Three reference passes over 500 tokens: seconds, so opt-in (LOUPE_TRANSCODER_RUN=1), as the other transcoder run.
	it.skipIf(!process.env.LOUPE_TRANSCODER_RUN)(
		'report what the TS forward measures on the held-out stories (variance explained, CE loss recovered with every MLP replaced)',
		{ timeout: 120_000 },
		() => {
			// The same seeded corpus as the bundled SAEs (whose corpus run kept its contexts): its last stories were held out.
			const corpus = JSON.parse(readFileSync(resolve(saeDir, 'corpus.json'), 'utf8'));
			expect(corpus.name).toBe(metrics.corpus.name);
			const contexts: number[][] = corpus.contexts;
			const held = contexts.slice(contexts.length - heldOutCount(contexts.length));
			const tcs = hooks.map((hook) => {
				const { cfg, weights: w } = readSaeFiles(
					['cfg.json', 'sae_weights.safetensors'].map((name) => ({ name, buffer: ab(readFileSync(resolve(dir, hook, name))) }))
				);
				return Transcoder.fromSae(cfg, w);
			});
			// One pass a mode: clean (keeping each layer's pairs), every MLP output zeroed, every MLP replaced; BOS as it is.
			const pass = (mode: 'clean' | 'zero' | 'replaced') => {
				let sum = 0;
				let count = 0;
				const pairs = hooks.map(() => ({ x: [] as number[], y: [] as number[] }));
				for (const ids of held) {
					const ref = new ReferenceLlama(weights);
					let mlpIn = new Float32Array(d);
					for (let t = 0; t < ids.length; t++) {
						const logits = ref.step(ids[t], undefined, (l, hook, v) => {
							if (mode === 'clean' || t === 0) return;
							if (hook === 'mlp_in') mlpIn = v.slice();
							if (hook === 'mlp_out') v.set(mode === 'zero' ? new Float32Array(d) : tcs[l].forward(mlpIn, 1).out);
						});
						if (mode === 'clean' && t > 0)
							for (let l = 0; l < nLayers; l++) (pairs[l].x.push(...ref.sublayer[l].mlp_in), pairs[l].y.push(...ref.sublayer[l].mlp_out));
						if (t + 1 === ids.length) break;
						const max = Math.max(...logits);
						const z = logits.reduce((a, x) => a + Math.exp(x - max), 0);
						sum += Math.log(z) + max - logits[ids[t + 1]];
						count++;
					}
				}
				return { ce: sum / count, pairs };
			};
			const clean = pass('clean');
			const zero = pass('zero').ce;
			const replaced = pass('replaced').ce;
			const recovered = (zero - replaced) / (zero - clean.ce);
			const ev = clean.pairs.map(({ x, y }, l) => {
				const rows = y.length / d;
				const out = tcs[l].forward(Float32Array.from(x), rows).out;
				let sse = 0;
				let sst = 0;
				for (let i = 0; i < d; i++) {
					let mean = 0;
					for (let r = 0; r < rows; r++) mean += y[r * d + i] / rows;
					for (let r = 0; r < rows; r++) ((sse += (y[r * d + i] - out[r * d + i]) ** 2), (sst += (y[r * d + i] - mean) ** 2));
				}
				return 1 - sse / sst;
			});
			const m = metrics.ceAllMlpsReplaced;
			console.log(
				`TS forward on ${held.length} held-out stories: CE clean ${clean.ce.toFixed(4)} (metrics ${m.clean.toFixed(4)}), all ${nLayers} MLPs replaced ${replaced.toFixed(4)} (${m.spliced.toFixed(4)}), zeroed ${zero.toFixed(4)} (${m.zeroAblated.toFixed(4)}): recovered ${(100 * recovered).toFixed(1)} % (${(100 * m.recovered).toFixed(1)} %); variance explained ${ev.map((v) => v.toFixed(3)).join(', ')}`
			);
			expect(m.replaced).toBe(nLayers);
			expect(Math.abs(clean.ce - m.clean)).toBeLessThan(1e-3);
			expect(Math.abs(zero - m.zeroAblated)).toBeLessThan(1e-3);
			expect(Math.abs(replaced - m.spliced)).toBeLessThan(1e-3);
			hooks.forEach((hook, l) => expect(Math.abs(ev[l] - metrics.layers[hook].explainedVarianceHeldOut), hook).toBeLessThan(1e-3));
			expect(recovered, 'the replacement model keeps a good part of what the MLPs do').toBeGreaterThan(0.4);
		}
	);
});

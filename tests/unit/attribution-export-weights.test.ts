// Weights traced from an export's graph structure (model/onnx/decoder-weights.ts) against things
// Loupe did not compute: PyTorch's reference.json for the torch.onnx.export decoders (the frozen
// forward on the traced weights gives PyTorch's logits and hooks), and llama2.c's own checkpoint
// (stories260K built as ONNX by Loupe, traced back, is the checkpoint, bit for bit).
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { openExportGraph } from '../../src/lib/engine/model/hf/exported-model';
import { traceDecoderWeights } from '../../src/lib/engine/model/onnx/decoder-weights';
import { readLlama2cCheckpoint } from '../../src/lib/engine/model/llama2c/checkpoint';
import { buildLlamaOnnx } from '../../src/lib/engine/model/llama2c/to-onnx';
import { openExportedDecoder } from '../../src/lib/engine/model/onnx/hook-manifest';
import { frozenForward } from '../../src/lib/engine/attribution/frozen-forward';
import { fixturesDir, readArrayBuffer, stories260KDir } from '../fixtures';
import { flat, maxAbsDiff } from '../numeric';

interface Reference {
	prompts: { input_ids: number[]; last_logits: number[]; hooks?: Record<string, number[][]> }[];
	hooks_prompt_index: number;
}

async function openTorchExport(name: string) {
	const dir = join(resolve(fixturesDir, 'torch-exports'), name);
	const ref = JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8')) as Reference;
	const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
	const opened = await openExportGraph(
		new Uint8Array(readFileSync(join(dir, 'model.onnx'))),
		'model.onnx',
		async (path) => new Uint8Array(readFileSync(join(dir, path))),
		config
	);
	return { opened, ref, config };
}

/** RoPE's base from its frequencies: invFreq[j] = base^(−2j/hs). */
const baseOf = (invFreq: Float64Array, hs: number) => Math.pow(invFreq[1], -hs / 2);

describe.each(['llama', 'gemma3', 'gpt2'])('%s export: traced weights against PyTorch', (name) => {
	it("reproduces reference.json's logits and hooks with the frozen forward", async () => {
		const { opened, ref, config } = await openTorchExport(name);
		const t0 = performance.now();
		const w = traceDecoderWeights(opened.decoder, opened.externalData, { name });
		const traceMs = performance.now() - t0;
		const V = w.config.vocabSize;
		let logits = 0;
		for (const p of ref.prompts) {
			const f = frozenForward(w, p.input_ids);
			const P = p.input_ids.length;
			logits = Math.max(logits, maxAbsDiff(f.logits.subarray((P - 1) * V, P * V), p.last_logits));
		}
		const hp = ref.prompts[ref.hooks_prompt_index];
		const f = frozenForward(w, hp.input_ids);
		const worst: Record<string, number> = { resid_pre: 0, mlp_in: 0, mlp_out: 0 };
		for (let l = 0; l < w.config.nLayers; l++) {
			const h = (k: string) => flat(hp.hooks![`blocks.${l}.hook_${k}`]);
			worst.resid_pre = Math.max(worst.resid_pre, maxAbsDiff(f.residPre![l], h('resid_pre')));
			worst.mlp_in = Math.max(worst.mlp_in, maxAbsDiff(f.mlpIn[l], h('mlp_in')));
			worst.mlp_out = Math.max(worst.mlp_out, maxAbsDiff(f.mlpOut[l], h('mlp_out')));
		}
		console.log(
			`${name}: traced in ${traceMs.toFixed(0)} ms; max |Δ| vs PyTorch: last_logits ${logits.toExponential(2)}, ` +
				Object.entries(worst)
					.map(([k, v]) => `${k} ${v.toExponential(2)}`)
					.join(', ')
		);
		expect(logits).toBeLessThan(1e-5);
		for (const v of Object.values(worst)) expect(v).toBeLessThan(1e-5);

		// What the structure gave, against Hugging Face's config.json (which the tracer never reads).
		const e = w.exported!;
		const gpt2 = name === 'gpt2';
		const nHeads = config.num_attention_heads ?? config.n_head;
		const hs = config.head_dim ?? config.n_embd / nHeads;
		expect(e.headSize).toBe(hs);
		expect(w.config).toMatchObject({
			nHeads,
			nKvHeads: config.num_key_value_heads ?? nHeads,
			hiddenDim: config.intermediate_size ?? config.n_inner ?? 4 * config.n_embd
		});
		expect(w.config.sharedClassifier).toBe(!!config.tie_word_embeddings);
		expect(w.config.normEps).toBeCloseTo(config.rms_norm_eps ?? config.layer_norm_epsilon, 12);
		expect(e.attnScale).toBeCloseTo((config.query_pre_attn_scalar ?? hs) ** -0.5, 7);
		expect(e.mlpActivation).toBe(config.hidden_act === 'silu' ? 'silu' : 'gelu_tanh');
		expect([e.layerNorm, e.mlpGated, !!e.positions]).toEqual([gpt2, !gpt2, gpt2]);
		e.layers.forEach((layer, l) => {
			const sliding = config.layer_types?.[l] === 'sliding_attention';
			expect(layer.window).toBe(sliding ? config.sliding_window : 0);
			const base = sliding ? config.rope_local_base_freq : config.rope_theta;
			if (gpt2) expect(layer.invFreq.length).toBe(0);
			else expect(Math.abs(baseOf(layer.invFreq, hs) / base - 1)).toBeLessThan(1e-4);
			expect(!!layer.qNorm && !!layer.postAttnNorm && !!layer.postFfnNorm).toBe(name === 'gemma3');
			expect(!!(layer.bq && layer.bv && layer.bo && layer.b1 && layer.b2 && layer.attnNormBias)).toBe(gpt2);
		});
		expect(e.embedScale).toBe(name === 'gemma3' ? Math.sqrt(config.hidden_size) : 1);
	});
});

describe('stories260K built as ONNX by Loupe, traced back', () => {
	it("gives exactly the checkpoint's weights", () => {
		const ckpt = readLlama2cCheckpoint(readArrayBuffer(`${stories260KDir}/stories260K.bin`), 'stories260K.bin');
		const [seg] = buildLlamaOnnx(ckpt, []).segments;
		const w = traceDecoderWeights(openExportedDecoder(seg.bytes), []);
		const { normEps, ropeTheta, seqLen, ...dims } = w.config;
		const { normEps: eps0, ropeTheta: theta0, seqLen: len0, ...dims0 } = ckpt.config;
		expect(dims).toEqual(dims0);
		expect(seqLen).toBe(len0);
		expect(normEps).toBeCloseTo(eps0, 12);
		expect(Math.abs(ropeTheta / theta0 - 1)).toBeLessThan(1e-4);
		const same = (a: Float32Array, b: Float32Array) => a.length === b.length && a.every((v, i) => Object.is(v, b[i]));
		expect(same(w.tokenEmbedding, ckpt.tokenEmbedding)).toBe(true);
		expect(same(w.classifier, ckpt.classifier)).toBe(true);
		expect(same(w.rmsFinal, ckpt.rmsFinal)).toBe(true);
		ckpt.layers.forEach((L, l) => {
			for (const k of Object.keys(L) as (keyof typeof L)[]) expect(same(w.layers[l][k], L[k]), `layer ${l} ${k}`).toBe(true);
		});
		const e = w.exported!;
		expect(e.attnScale).toBeCloseTo(1 / Math.sqrt(e.headSize), 7); // the graph divides by float32 √hs
		expect(e.layers.every((x) => x.window === 0 && !x.qNorm && !x.postAttnNorm)).toBe(true);
	});
});

describe.each(['gptneox'])('%s export: refused with the reason', (name) => {
	it('says what the attribution does not model and what to open instead', async () => {
		const { opened } = await openTorchExport(name);
		let err: unknown;
		try {
			traceDecoderWeights(opened.decoder, opened.externalData, { name });
		} catch (e) {
			err = e;
		}
		expect(err).toMatchObject({ code: 'unsupported-checkpoint', message: expect.stringMatching(/parallel attention and MLP/) });
		expect((err as { action: string }).action).toMatch(/stories260K/);
	});
});

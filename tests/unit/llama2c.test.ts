import { describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-web';
import { readLlama2cCheckpoint } from '../../src/lib/engine/model/llama2c/checkpoint';
import { Llama2cTokenizer, BOS } from '../../src/lib/engine/model/llama2c/tokenizer';
import { ReferenceLlama } from '../../src/lib/engine/model/llama2c/reference-forward';
import { buildLlamaOnnx } from '../../src/lib/engine/model/llama2c/to-onnx';
import { publishedGreedy256, readArrayBuffer, stories260KDir } from '../fixtures';

ort.env.wasm.numThreads = 1;

const weights = readLlama2cCheckpoint(readArrayBuffer(`${stories260KDir}/stories260K.bin`), 'stories260K.bin');
const tokenizer = new Llama2cTokenizer(readArrayBuffer(`${stories260KDir}/tok512.bin`), weights.config.vocabSize);

const argmax = (a: Float32Array) => a.reduce((best, v, i) => (v > a[best] ? i : best), 0);

describe('llama2.c checkpoint', () => {
	it('reads the stories260K header as the fixture README states', () => {
		expect(weights.config).toMatchObject({
			dim: 64,
			hiddenDim: 172,
			nLayers: 5,
			nHeads: 8,
			nKvHeads: 4,
			vocabSize: 512,
			seqLen: 512,
			sharedClassifier: true
		});
	});
	it('rejects a truncated file with the sizes in the message', () => {
		const buf = readArrayBuffer(`${stories260KDir}/stories260K.bin`).slice(0, 500_000);
		expect(() => readLlama2cCheckpoint(buf, 'cut.bin')).toThrow(/cut\.bin is truncated: it has 500,000 bytes.*needs 1,056,540/);
	});
	it('rejects a file that is not a checkpoint', () => {
		const text = new TextEncoder().encode('<!doctype html><html>Not found</html>'.repeat(10));
		expect(() => readLlama2cCheckpoint(text.buffer as ArrayBuffer, 'page.html')).toThrow(/page\.html is not a llama2\.c checkpoint/);
	});
});

describe('the plain TypeScript reference forward', () => {
	it("reproduces run.c's published greedy output (256 steps, BOS first)", () => {
		const ref = new ReferenceLlama(weights);
		const tokens: number[] = [];
		let token = BOS;
		for (let pos = 0; pos < 256; pos++) {
			const next = argmax(ref.step(token));
			if (next === BOS) break;
			tokens.push(next);
			token = next;
		}
		expect(tokenizer.decode(tokens)).toBe(publishedGreedy256());
	});
});

describe('the llama2.c tokenizer', () => {
	it('round-trips text, including characters that need byte fallback', () => {
		for (const text of ['Once upon a time, there was a little girl named Lily.', 'Ünïcödé → 🐇 ok', 'a\nb\tc']) {
			const ids = tokenizer.encode(text);
			expect(ids[0]).toBe(BOS);
			// decode drops the dummy-prefix space after BOS, as run.c does
			expect(tokenizer.decode(ids.slice(1))).toBe(text);
		}
	});
	it('merges pieces into fewer tokens than bytes, and uses byte tokens for unknown characters', () => {
		const ids = tokenizer.encode('Once upon a time', false);
		expect(ids.length).toBeLessThan('Once upon a time'.length / 2);
		const rabbit = tokenizer.encode('🐇', false);
		expect(rabbit.slice(1)).toEqual([...new TextEncoder().encode('🐇')].map((b) => b + 3));
	});
});

/** Runs a built segment chain in ORT (wasm, in Node) over `tokens`, prefill then one token per step. */
async function runOnnx(cuts: number[], tokens: number[], prefill: number) {
	const model = buildLlamaOnnx(weights, cuts);
	const sessions = await Promise.all(model.segments.map((s) => ort.InferenceSession.create(s.bytes, { executionProviders: ['wasm'] })));
	const { vocabSize } = model.shape;
	const { nKvHeads } = weights.config;
	const headDim = weights.config.dim / weights.config.nHeads;
	const past = new Map<string, ort.Tensor>();
	for (let l = 0; l < model.shape.nLayers; l++)
		for (const kind of ['key', 'value'])
			past.set(`past_key_values.${l}.${kind}`, new ort.Tensor('float32', new Float32Array(0), [1, nKvHeads, 0, headDim]));
	const logitsPerPos: Float32Array[] = [];
	const residuals: Map<string, Float32Array[]> = new Map();
	const chunks = [tokens.slice(0, prefill), ...tokens.slice(prefill).map((t) => [t])];
	let pos = 0;
	for (const chunk of chunks) {
		const S = chunk.length;
		const common = {
			position_ids: new ort.Tensor('int64', BigInt64Array.from(chunk.map((_, i) => BigInt(pos + i))), [1, S]),
			attention_mask: new ort.Tensor('int64', new BigInt64Array(pos + S).fill(1n), [1, pos + S])
		};
		let carry: Record<string, ort.Tensor> = { input_ids: new ort.Tensor('int64', BigInt64Array.from(chunk.map(BigInt)), [1, S]) };
		for (const [i, seg] of model.segments.entries()) {
			const feeds: Record<string, ort.Tensor> = { ...carry, ...common };
			for (let l = seg.layers[0]; l < seg.layers[1]; l++)
				for (const kind of ['key', 'value']) feeds[`past_key_values.${l}.${kind}`] = past.get(`past_key_values.${l}.${kind}`)!;
			const out = await sessions[i].run(feeds);
			for (let l = seg.layers[0]; l < seg.layers[1]; l++)
				for (const kind of ['key', 'value']) past.set(`past_key_values.${l}.${kind}`, out[`present.${l}.${kind}`]);
			if (seg.residualOut) {
				carry = { [seg.residualOut]: out[seg.residualOut] };
				const data = out[seg.residualOut].data as Float32Array;
				const list = residuals.get(seg.residualOut) ?? [];
				for (let s = 0; s < S; s++) list.push(data.slice(s * model.shape.dModel, (s + 1) * model.shape.dModel));
				residuals.set(seg.residualOut, list);
			} else {
				const data = out.logits.data as Float32Array;
				for (let s = 0; s < S; s++) logitsPerPos.push(data.slice(s * vocabSize, (s + 1) * vocabSize));
			}
		}
		pos += S;
	}
	return { logitsPerPos, residuals };
}

describe('the ONNX graph built from the checkpoint', () => {
	const tokens = [BOS, ...tokenizer.encode('Once upon a time, there was a little rabbit named Tim. He liked to', false)];
	const ref = new ReferenceLlama(weights);
	const refLogits: Float32Array[] = [];
	const refResid: Float32Array[][] = [];
	for (const t of tokens) {
		refLogits.push(ref.step(t));
		refResid.push(ref.residual.map((r) => r.slice()));
	}
	const maxAbs = (a: Float32Array[], b: Float32Array[]) =>
		Math.max(...a.map((x, i) => x.reduce((m, v, j) => Math.max(m, Math.abs(v - b[i][j])), 0)));

	it('matches the reference logits at every position (prefill 5, then KV-cached steps)', async () => {
		const { logitsPerPos } = await runOnnx([], tokens, 5);
		expect(logitsPerPos.length).toBe(tokens.length);
		const err = maxAbs(logitsPerPos, refLogits);
		console.log(`max |logits onnx - reference| over ${tokens.length} positions: ${err.toExponential(2)}`);
		expect(err).toBeLessThan(1e-3);
	});

	it('cut into segments at hook points gives the same logits and the reference residuals', async () => {
		// boundaries 0, 2 and 5: blocks.0.hook_resid_pre, blocks.2.hook_resid_pre, blocks.4.hook_resid_post
		const { logitsPerPos, residuals } = await runOnnx([0, 2, 5], tokens, 3);
		expect([...residuals.keys()]).toEqual(['blocks.0.hook_resid_pre', 'blocks.2.hook_resid_pre', 'blocks.4.hook_resid_post']);
		expect(maxAbs(logitsPerPos, refLogits)).toBeLessThan(1e-3);
		for (const [name, b] of [
			['blocks.0.hook_resid_pre', 0],
			['blocks.2.hook_resid_pre', 2],
			['blocks.4.hook_resid_post', 5]
		] as const) {
			const err = maxAbs(
				residuals.get(name)!,
				refResid.map((r) => r[b])
			);
			console.log(`max |${name} onnx - reference|: ${err.toExponential(2)}`);
			expect(err).toBeLessThan(1e-3);
		}
	});
});

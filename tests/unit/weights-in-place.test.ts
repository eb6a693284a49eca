// Weights stored inside the graph file, handed to onnxruntime as references into the graph's own
// bytes (inline-as-external.ts): the logits equal one uncached forward of the unmodified graph file
// (fed here straight from its input list, without Loupe's DecoderIo), uncut and cut at hooks; the
// segments no longer carry the weights; the embedded and external-data variants of one model give
// the same logits; a tied head written as MatMul(x, Transpose(W_E)) runs as Gemm on W_E with the
// same logits. Also: a model too large for the page is refused from the graph's sizes before
// any sidecar is fetched, and the unembedding equals the LM head's weight transposed (computed
// here by a plain loop from the file's bytes).
import './liftoff-only';
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import * as ort from 'onnxruntime-web';
import { openExportGraph } from '../../src/lib/engine/model/hf/exported-model';
import { SegmentRunner } from '../../src/lib/engine/model/runner';
import { GRAPH_WEIGHTS } from '../../src/lib/engine/model/onnx/inline-as-external';
import { buildRealSizeDecoder } from '../../src/lib/engine/model/onnx/real-size-decoders';
import { decodeModel, encodeModel } from '../../src/lib/engine/model/onnx/graph';
import { findUnembedding } from '../../src/lib/engine/model/onnx/unembedding';
import { WASM_WEIGHT_BUDGET } from '../../src/lib/engine/model/onnx/size-limits';
import { maxAbsDiff } from '../numeric';
import { fixturesDir } from '../fixtures';

ort.env.wasm.numThreads = 1;
ort.env.logLevel = 'error';

const torchDir = (m: string) => resolve(fixturesDir, 'torch-exports', m);
const view = (b: Buffer) => new Uint8Array(b.buffer, b.byteOffset, b.byteLength);

/** One forward of the whole sequence through the unmodified graph, empty pasts: [S × V]. */
async function uncached(graph: Uint8Array, externalData: { path: string; data: Uint8Array }[], ids: number[]): Promise<Float32Array> {
	const s = await ort.InferenceSession.create(graph, { executionProviders: ['wasm'], externalData });
	const n = ids.length;
	const int64 = (v: number[], dims: number[]) => new ort.Tensor('int64', BigInt64Array.from(v, BigInt), dims);
	const feeds: Record<string, ort.Tensor> = {};
	for (const m of s.inputMetadata) {
		if (!m.isTensor) throw new Error(`${m.name} is not a tensor`);
		if (m.name === 'input_ids') feeds[m.name] = int64(ids, [1, n]);
		else if (m.name === 'position_ids')
			feeds[m.name] = int64(
				ids.map((_, i) => i),
				[1, n]
			);
		else if (m.name === 'attention_mask')
			feeds[m.name] = int64(
				ids.map(() => 1),
				[1, n]
			);
		else {
			const dims = m.shape.map((d, i) => (i === 0 ? 1 : i === 2 ? 0 : (d as number)));
			feeds[m.name] = new ort.Tensor('float32', new Float32Array(0), dims);
		}
	}
	try {
		const out = await s.run(feeds);
		return Float32Array.from(out.logits.data as Float32Array);
	} finally {
		await s.release();
	}
}

/** The runner's logits for the whole sequence in one forward (empty cache), and its segments' total size. */
async function viaRunner(opened: Awaited<ReturnType<typeof openExportGraph>>, hooks: string[], ids: number[]) {
	const model = opened.segmentAt(hooks);
	const runner = await SegmentRunner.create(ort, model, 'wasm');
	try {
		const { logits } = await runner.forward(ids);
		return {
			logits: Float32Array.from(logits.data as Float32Array),
			segmentBytes: model.segments.reduce((a, s) => a + s.bytes.byteLength, 0)
		};
	} finally {
		await runner.dispose();
	}
}

describe('weights inside the graph, read in place', () => {
	it('torch.onnx GPT-2 (weights inside, tied head stored twice): logits equal the unmodified graph, uncut and cut, segments without weights', async () => {
		const bytes = view(readFileSync(resolve(torchDir('gpt2'), 'model.onnx')));
		const ids = [464, 2068, 7586, 21831, 18045, 625, 262, 16931, 3290];
		const reference = await uncached(bytes, [], ids);
		const opened = await openExportGraph(bytes, 'gpt2/model.onnx', async () => {
			throw new Error('no sidecar expected');
		});
		const own = opened.externalData.find((f) => f.path === GRAPH_WEIGHTS)!;
		expect(own.data).toBe(bytes); // the graph's bytes themselves, not a copy
		// Nothing decoded still views the graph's bytes (Constant values, small initializers copied
		// out), so an engine that lets go of them once sessions exist can free them.
		const views: Uint8Array[] = [];
		const walk = (o: unknown, seen = new Set<unknown>()) => {
			if (!o || typeof o !== 'object' || seen.has(o)) return;
			seen.add(o);
			if (o instanceof Uint8Array) return void views.push(o);
			for (const v of Object.values(o)) walk(v, seen);
		};
		walk(opened.decoder.graph.model);
		expect(views.length).toBeGreaterThan(100);
		expect(views.filter((v) => v.buffer === bytes.buffer).length).toBe(0);
		for (const hooks of [[], ['blocks.2.hook_resid_pre'], ['blocks.1.hook_attn_out', 'blocks.3.hook_resid_pre', 'blocks.3.hook_mlp_out']]) {
			const r = await viaRunner(opened, hooks, ids);
			const diff = maxAbsDiff(r.logits, reference);
			console.log(
				`gpt2 in place, cut at [${hooks.join(', ')}]: max |Δ logits| ${diff}, segments ${r.segmentBytes} bytes of a ${bytes.byteLength}-byte graph`
			);
			if (!hooks.length) expect(diff).toBe(0);
			else expect(diff).toBeLessThan(1e-4);
			expect(r.segmentBytes).toBeLessThan(bytes.byteLength / 20);
		}
	});

	it('the same model embedded and with external data gives the same logits as the unmodified graph', async () => {
		const build = () => buildRealSizeDecoder({ arch: 'gemma3', layers: 2, vocab: 512, seed: 3 }).builder;
		const embedded = build().toBytes();
		const external = build().toExternal('model.onnx_data');
		const ids = [1, 7, 300, 42, 511, 0];
		const reference = await uncached(embedded, [], ids);
		expect(maxAbsDiff(await uncached(external.graph, [{ path: 'model.onnx_data', data: external.data }], ids), reference)).toBe(0);
		const a = await openExportGraph(embedded, 'embedded.onnx', async () => new Uint8Array(0));
		const b = await openExportGraph(external.graph, 'external.onnx', async (p) => {
			expect(p).toBe('model.onnx_data');
			return external.data;
		});
		// The head, MatMul(x, Transpose(W_E)) in the file, runs as Gemm on W_E itself (tied-head.ts).
		for (const o of [a, b]) {
			expect(o.decoder.graph.nodes.some((n) => n.opType === 'Gemm' && n.input![1] === 'model.embed_tokens.weight')).toBe(true);
			expect(o.decoder.graph.nodes.some((n) => n.opType === 'Transpose' && n.input![0] === 'model.embed_tokens.weight')).toBe(false);
		}
		for (const hooks of [[], ['blocks.1.hook_resid_pre']]) {
			const ra = await viaRunner(a, hooks, ids);
			const rb = await viaRunner(b, hooks, ids);
			console.log(
				`gemma3-style, head as Gemm, cut at [${hooks.join(', ')}]: max |Δ logits| ${maxAbsDiff(ra.logits, reference)} (logits up to ${Math.max(...reference.map(Math.abs))})`
			);
			expect(maxAbsDiff(ra.logits, reference)).toBeLessThan(1e-4);
			expect(maxAbsDiff(ra.logits, rb.logits)).toBe(0);
		}
	});
});

describe('models too large for the page', () => {
	/** A small external-data graph whose entries claim the embedding lies `at` bytes into its sidecar. */
	function claiming(at: number): Uint8Array {
		const { graph } = buildRealSizeDecoder({ arch: 'gpt2', layers: 1, vocab: 300 }).builder.toExternal('model.onnx_data');
		const m = decodeModel(graph);
		const emb = m.graph!.initializer!.find((t) => t.name === 'transformer.wte.weight')!;
		emb.externalData = emb.externalData!.map((e) => (e.key === 'offset' ? { key: 'offset', value: String(at) } : e));
		return encodeModel(m);
	}

	it('a sidecar beyond 4 GiB is refused with its size before it is fetched', async () => {
		let fetched = 0;
		const err = await openExportGraph(claiming(5 * 1024 ** 3), 'big.onnx', async () => {
			fetched++;
			return new Uint8Array(0);
		}).catch((e) => e);
		expect(fetched).toBe(0);
		expect(err.code).toBe('too-large');
		expect(err.message).toMatch(/model\.onnx_data is 5\.00 GiB \(5369\d+ bytes\).*at most 4\.00 GiB/);
		expect(err.action).toMatch(/smaller model|quantized/);
	});

	it('on the CPU, weights beyond what the wasm heap can hold are refused, with the heap size; WebGPU goes on to fetch', async () => {
		const graph = claiming(WASM_WEIGHT_BUDGET);
		const err = await openExportGraph(graph, 'big.onnx', async () => new Uint8Array(0), {}, { backend: 'wasm' }).catch((e) => e);
		expect(err.message).toMatch(
			/big\.onnx has 3\.\d\d GiB of weights \(\d+ bytes\).*heap of at most 4\.00 GiB, of which 3\.50 GiB can hold weights/
		);
		let fetched = 0;
		const onGpu = await openExportGraph(graph, 'big.onnx', async () => (fetched++, new Uint8Array(0)), {}, { backend: 'webgpu' }).catch(
			(e) => e
		);
		expect(fetched).toBe(1);
		expect(onGpu.code).toBe('truncated'); // the empty sidecar is then found short: past the size check
	});
});

describe('unembedding', () => {
	/** W_U[v, i] by a plain loop from the initializer's bytes: [V, d] as stored, or [d, V] transposed. */
	function expected(bytes: Uint8Array, V: number, D: number, stored: 'VD' | 'DV'): Float32Array {
		const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
		const out = new Float32Array(V * D);
		for (let v = 0; v < V; v++)
			for (let i = 0; i < D; i++) out[v * D + i] = dv.getFloat32(4 * (stored === 'VD' ? v * D + i : i * V + v), true);
		return out;
	}

	it('GPT-2 (tied head stored twice, inside the graph): the LM head weight transposed, answered with the embedding', async () => {
		const bytes = view(readFileSync(resolve(torchDir('gpt2'), 'model.onnx')));
		const opened = await openExportGraph(bytes, 'gpt2', async () => new Uint8Array(0));
		const u = findUnembedding(opened.decoder, opened.externalData)!;
		const { vocabSize: V, dModel: D } = opened.decoder.trace;
		// Read from the untouched file: the MatMul's [d, V] weight, not the one Loupe picks.
		const m = decodeModel(bytes);
		const head = m.graph!.initializer!.find((t) => t.dims?.length === 2 && Number(t.dims[0]) === D && Number(t.dims[1]) === V)!;
		expect(maxAbsDiff(u.classifier, expected(head.rawData!, V, D, 'DV'))).toBe(0);
	});

	it('untied LM head (llama): the [d, V] weight transposed', async () => {
		const bytes = view(readFileSync(resolve(torchDir('llama'), 'model.onnx')));
		const opened = await openExportGraph(bytes, 'llama', async () => new Uint8Array(0));
		const { vocabSize: V, dModel: D } = opened.decoder.trace;
		const u = findUnembedding(opened.decoder, opened.externalData)!;
		const m = decodeModel(bytes);
		const g = m.graph!;
		const logitsWriter = g.node!.find((n) => n.output!.includes('logits'))!;
		const head = g.initializer!.find((t) => t.name === logitsWriter.input![1])!;
		expect(head.dims!.map(Number)).toEqual([D, V]);
		expect(maxAbsDiff(u.classifier, expected(head.rawData!, V, D, 'DV'))).toBe(0);
	});

	it('tied through a Transpose, in external data: the embedding itself, a view into the sidecar (no copy)', async () => {
		const { graph, data } = buildRealSizeDecoder({ arch: 'gemma3', layers: 1, vocab: 1000 }).builder.toExternal('model.onnx_data');
		const opened = await openExportGraph(graph, 'g.onnx', async () => data);
		const u = findUnembedding(opened.decoder, opened.externalData)!;
		const emb = decodeModel(graph).graph!.initializer!.find((t) => t.name === 'model.embed_tokens.weight')!;
		const offset = Number(emb.externalData!.find((e) => e.key === 'offset')!.value);
		const { vocabSize: V, dModel: D } = opened.decoder.trace;
		expect(maxAbsDiff(u.classifier, expected(data.subarray(offset, offset + V * D * 4), V, D, 'VD'))).toBe(0);
		expect(u.classifier.buffer).toBe(data.buffer);

		// The same file as a Node Buffer at an odd offset (what Node's readers give): copied out aligned.
		// Buffer's `slice` is a view, so a copy made with it stayed unaligned and threw.
		const odd = Buffer.alloc(data.length + 1);
		odd.set(data, 1);
		const shifted = odd.subarray(1);
		const v = findUnembedding(opened.decoder, [{ path: 'model.onnx_data', data: shifted }])!;
		expect(maxAbsDiff(v.classifier, expected(data.subarray(offset, offset + V * D * 4), V, D, 'VD'))).toBe(0);
	});
});

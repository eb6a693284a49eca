// The token embedding outside onnxruntime (onnx/embedding-outside.ts) and a tied head read in
// pieces (onnx/gemm-pieces.ts), on wasm in Node. Two references Loupe did not compute: PyTorch's
// reference.json for the torch exports (greedy ids through the app's runner, the matrix in no
// segment), and an uncached forward of the unmodified graph for a small Gemma-3-style decoder
// whose tied head is split into pieces.
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as ort from 'onnxruntime-web';
import { openExportGraph } from '../../src/lib/engine/model/hf/exported-model';
import { GraphIndex, decodeModel } from '../../src/lib/engine/model/onnx/graph';
import { EMBEDS_INPUT } from '../../src/lib/engine/model/onnx/embedding-outside';
import { cutExportedDecoder } from '../../src/lib/engine/model/onnx/hook-manifest';
import { buildRealSizeDecoder } from '../../src/lib/engine/model/onnx/real-size-decoders';
import { emptyPast, stepFeeds } from '../../src/lib/engine/model/onnx/decoder-io';
import { SegmentRunner } from '../../src/lib/engine/model/runner';
import { generateIds } from '../../src/lib/engine/model/generate';
import { nodeWeightFile } from '../../src/cli/node-weight-file';
import type { SegmentedModel } from '../../src/lib/engine/model/segments';
import { fixturesDir } from '../fixtures';
import { maxAbsDiff } from '../numeric';

ort.env.wasm.numThreads = 1;
ort.env.logLevel = 'error';

const greedy = (steps: number) => ({ temperature: 0, topP: 1, topK: 0, freqPenalty: 0, maxTokens: steps, seed: 0 });

/** Initializer names of each segment's graph, as onnxruntime is handed it. */
const segmentInitializers = (m: SegmentedModel) => m.segments.map((s) => new GraphIndex(decodeModel(s.bytes)).initializers);

describe.each(['gpt2', 'gemma3'])('torch export %s: the embedding lookup outside the segments', (name) => {
	it("no segment holds the matrix, and greedy ids uncut and cut equal PyTorch's", async () => {
		const dir = join(resolve(fixturesDir, 'torch-exports'), name);
		const ref = JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8'));
		// The weights as the app hands them in a worker: files read a range at a time.
		const opened = await openExportGraph(
			new Uint8Array(readFileSync(join(dir, 'model.onnx'))),
			'model.onnx',
			async (path) => nodeWeightFile(join(dir, path), path),
			JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')),
			{ graphWeights: nodeWeightFile(join(dir, 'model.onnx')) }
		);
		const embedding = opened.decoder.trace.embedding;
		// The traced decoder (what attribution reads) keeps its Gather.
		expect(opened.decoder.graph.nodes.some((n) => n.opType === 'Gather' && n.input![0] === embedding)).toBe(true);
		for (const hooks of [[], ['blocks.1.hook_resid_pre']]) {
			const model = opened.segmentAt(hooks);
			expect(segmentInitializers(model).map((inits) => inits.has(embedding))).toEqual(model.segments.map(() => false));
			expect(model.segments[0].inputNames).toContain(EMBEDS_INPUT);
			const runner = await SegmentRunner.create(ort, model, 'wasm');
			try {
				for (const p of ref.prompts.slice(0, 1)) {
					const r = await generateIds(runner, null, p.input_ids, greedy(ref.greedy_steps));
					expect(r.tokens, `${name} cut at [${hooks}], prompt ${JSON.stringify(p.input_ids)}`).toEqual(p.greedy);
				}
			} finally {
				await runner.dispose();
			}
		}
	});
});

// gemma3: the tied head as Gemm(transB) on W_E, in row pieces; gpt2: its untied [768, V] MatMul weight, in column pieces.
// Vocabularies and piece sizes such that the head is the one weight above a piece (the MLP's are 5.2 / 9.4 MiB).
describe.each([
	['gemma3', 8192, 6, 4],
	['gpt2', 4096, 10, 2]
] as const)('the head in pieces (a small %s-style decoder, external data)', (arch, vocab, pieceMiB, expectedPieces) => {
	it('equals one uncached forward of the unmodified graph, with no piece the whole matrix', async () => {
		const { builder, opset } = buildRealSizeDecoder({ arch, layers: 2, vocab });
		const { graph, data } = builder.toExternal('model.onnx_data', { opset });
		const dir = mkdtempSync(join(tmpdir(), 'loupe-pieces-'));
		writeFileSync(join(dir, 'model.onnx_data'), data);
		const opened = await openExportGraph(graph, 'model.onnx', async (path) => nodeWeightFile(join(dir, path), path));
		const { trace, io } = opened.decoder;
		const model: SegmentedModel = {
			...opened.segmentAt([]),
			segments: cutExportedDecoder(opened.decoder, ['blocks.1.hook_resid_pre'], { pieceBytes: pieceMiB << 20 })
		};
		const head = segmentInitializers(model).at(-1)!;
		const pieces = [...head.values()].filter((t) => t.name!.includes('/loupe_piece/'));
		// The whole [V, d] or [d, V] matrix is in no segment; its pieces add up to the vocabulary.
		expect([...head.values()].filter((t) => t.dims?.map(Number).includes(trace.vocabSize) && !pieces.includes(t))).toEqual([]);
		expect(pieces.length).toBe(expectedPieces);
		expect(pieces.reduce((a, t) => a + Number(t.dims![arch === 'gemma3' ? 0 : 1]), 0)).toBe(trace.vocabSize);

		const ids = [1, 464, vocab - 1, 7, 1000, 3];
		const plain = await ort.InferenceSession.create(graph, { externalData: [{ path: 'model.onnx_data', data }] });
		const feeds = { ...stepFeeds(ort, io, ids, 0), ...Object.fromEntries(io.kv.map((p) => [p.past, emptyPast(ort, p)])) };
		const expected = (await plain.run(feeds))[io.logits].data as Float32Array;
		await plain.release();

		const runner = await SegmentRunner.create(ort, model, 'wasm');
		try {
			// The prompt, then two tokens from the cache.
			const logits = async (tokens: number[]) => (await runner.forward(tokens)).logits.data as Float32Array;
			const rows = [await logits(ids.slice(0, 4))];
			for (const id of ids.slice(4)) rows.push(await logits([id]));
			const all = Float32Array.from(rows.flatMap((r) => [...r]));
			const diff = maxAbsDiff(all, expected);
			console.log(`${arch}: head in ${pieces.length} pieces: cached chain vs uncached unmodified graph ${diff.toExponential(2)}`);
			expect(diff).toBeLessThan(1e-5);
		} finally {
			await runner.dispose();
		}
	});
});

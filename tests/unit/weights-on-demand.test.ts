// Weights read on demand through the engine's own session (ModelSession.loadFromFiles, wasm in
// Node), on the torch.onnx Gemma 3 export (external data) from ../shared/fixtures/torch-exports: its
// files are picked Files, handed to onnxruntime as WeightFiles that read one tensor's range at a time
// (a worker's FileReaderSync, given to Node here over the test's own File bytes). Checked: greedy ids
// equal PyTorch's (reference.json), before and after a re-cut; the runner's model keeps no weight
// files once its sessions exist; a re-cut disposes the old runner before any new session is created,
// and reads the weights again; the unembedding is read only when asked for, and equals the
// embedding read from the file by a plain loop; a weights file that can no longer be read is named
// in the error. Also: a Hub download too large for the page is refused ('too-large') from the Hub's
// file list, before any byte of the model is fetched.
import './liftoff-only';
import './engine-in-node';
import { afterAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { resolve } from 'node:path';
import * as ort from 'onnxruntime-web/webgpu';
import { ModelSession } from '../../src/lib/engine/model/session';
import { generateIds } from '../../src/lib/engine/model/generate';
import { decodeModel } from '../../src/lib/engine/model/onnx/graph';
import { openExportFromHub } from '../../src/lib/engine/model/open';
import { WeightFile } from '../../src/lib/engine/model/onnx/weight-file';
import type { OnnxModel } from '../../src/lib/engine/model/catalogue';
import { maxAbsDiff } from '../numeric';
import { fixturesDir } from '../fixtures';
import { wordLevelTokenizer } from '../word-level-tokenizer.mjs';

const g = globalThis as unknown as { FileReaderSync?: unknown };

const dir = resolve(fixturesDir, 'torch-exports', 'gemma3');
const ref = JSON.parse(readFileSync(resolve(dir, 'reference.json'), 'utf8')) as {
	vocab_size: number;
	prompts: { input_ids: number[]; greedy: number[] }[];
};

/** A File whose slices remember where they come from, so the FileReaderSync below can read them synchronously. */
class Slice extends Blob {
	constructor(
		readonly source: PickedFile,
		readonly start: number,
		readonly end: number
	) {
		super([]);
	}
}
class PickedFile extends File {
	reads = 0;
	unreadable = false;
	constructor(
		readonly content: Uint8Array,
		name: string
	) {
		super([content as BlobPart], name);
	}
	override slice(start = 0, end = this.size): Blob {
		return new Slice(this, start, end);
	}
}
// What a worker has: synchronous reads of a Blob (here, of the test's own Files' bytes).
g.FileReaderSync = class {
	readAsArrayBuffer(b: Blob): ArrayBuffer {
		if (!(b instanceof Slice)) throw new Error('only slices of the test files are read here');
		if (b.source.unreadable) throw new DOMException('A requested file or directory could not be found', 'NotFoundError');
		b.source.reads++;
		return b.source.content.slice(b.start, b.end).buffer;
	}
};

const greedy = { maxTokens: 4, temperature: 0, seed: 1, topK: 0, topP: 1, freqPenalty: 0 };
const words = Array.from({ length: ref.vocab_size }, (_, i) => `w${i}`);

function pick() {
	const read = (n: string) => new Uint8Array(readFileSync(resolve(dir, n)));
	const graph = new PickedFile(read('model.onnx'), 'model.onnx');
	const data = new PickedFile(read('model.onnx_data'), 'model.onnx_data');
	const json = (name: string, v: unknown) => new File([JSON.stringify(v)], name);
	const files = [
		graph,
		data,
		json('tokenizer.json', wordLevelTokenizer(words, [0, 1, 2], 'w3')),
		new File([readFileSync(resolve(dir, 'config.json'))], 'config.json')
	];
	return { graph, data, files };
}

describe('weights read on demand (torch.onnx Gemma 3, external data, picked files)', () => {
	it("generates PyTorch's ids, keeps no weight files after building sessions, re-cuts after disposing and reads again; W_U read when asked", async () => {
		const { graph, data, files } = pick();
		const session = new ModelSession();
		const info = await session.loadFromFiles(files);
		expect(info.backend).toBe('wasm');
		const m = session.requireModel();
		expect(m.runner.model.externalData).toBeUndefined();
		expect(data.reads).toBeGreaterThan(0); // onnxruntime read the tensors from the File, range by range
		const p = ref.prompts[1];
		expect((await generateIds(m.runner, null, p.input_ids, greedy)).tokens).toEqual(p.greedy.slice(0, 4));

		// Re-cut (an SAE at blocks.3): the old sessions go first, then the weights are read again.
		const events: string[] = [];
		const old = m.runner;
		const dispose = old.dispose.bind(old);
		old.dispose = async () => {
			events.push(`dispose old (reads so far ${data.reads})`);
			await dispose();
		};
		const readsBefore = data.reads;
		const create = ort.InferenceSession.create;
		(ort.InferenceSession as { create: unknown }).create = (...args: Parameters<typeof create>) => {
			const files = (args[1] as { externalData?: { data: Uint8Array }[] })?.externalData ?? [];
			events.push(`create (${files.filter((f) => f.data instanceof WeightFile).length} weight files)`);
			return create.apply(ort.InferenceSession, args);
		};
		try {
			await session.locked(() => session.ensureCuts(m, ['blocks.3.hook_resid_pre']));
		} finally {
			(ort.InferenceSession as { create: unknown }).create = create;
		}
		expect(events[0]).toBe(`dispose old (reads so far ${readsBefore})`);
		expect(events.slice(1)).toEqual(['create (1 weight files)', 'create (1 weight files)']); // two segments, each reading the sidecar
		expect(data.reads).toBeGreaterThan(readsBefore);
		expect(m.runner.model.externalData).toBeUndefined();
		m.runner.reset();
		expect((await generateIds(m.runner, null, p.input_ids, greedy)).tokens).toEqual(p.greedy.slice(0, 4));

		// The unembedding: not read at open, read now, equal to the embedding as the file stores it.
		expect(m.source.unembedding).toBeNull();
		expect(m.source.hasUnembedding).toBe(true);
		const u = (await m.source.loadUnembedding())!;
		const emb = decodeModel(graph.content).graph!.initializer!.find((t) => t.name === 'model.embed_tokens.weight')!;
		const offset = Number(emb.externalData!.find((e) => e.key === 'offset')!.value);
		const V = ref.vocab_size;
		const D = u.classifier.length / V;
		const dv = new DataView(data.content.buffer, data.content.byteOffset + offset, V * D * 4);
		const expected = Float32Array.from({ length: V * D }, (_, j) => dv.getFloat32(4 * j, true));
		expect(maxAbsDiff(u.classifier, expected)).toBe(0);
		expect(m.source.unembedding).toBe(u);

		// The picked weights file can no longer be read: the next cut names it.
		data.unreadable = true;
		const err = await session.locked(() => session.ensureCuts(m, ['blocks.1.hook_resid_pre'])).catch((e) => e);
		expect(err.message).toMatch(
			/model\.onnx_data could not be read again \(A requested file or directory could not be found\): it was moved/
		);
	});
});

describe('a Hub download too large for the page', () => {
	const requests: string[] = [];
	const server = createServer((req, res) => {
		requests.push(req.url!);
		if (req.url!.startsWith('/api/models/')) {
			res.setHeader('content-type', 'application/json');
			res.end(
				JSON.stringify([
					{ type: 'file', path: 'onnx/model.onnx', size: 200_000 },
					{ type: 'file', path: 'onnx/model.onnx_data', size: Math.round(3.8 * 1024 ** 3) }
				])
			);
		} else res.writeHead(404).end();
	});
	const listening = new Promise<string>((r) =>
		server.listen(0, '127.0.0.1', () => r(`http://127.0.0.1:${(server.address() as { port: number }).port}`))
	);
	afterAll(() => server.close());
	const entry: OnnxModel = {
		id: 'big',
		name: 'Big',
		repo: 'someone/big',
		revision: 'main',
		format: 'onnx',
		onnxFolder: 'onnx',
		variants: [{ file: 'model.onnx', dtype: 'fp32' }],
		chat: false
	} as OnnxModel;

	it('on the CPU: refused with the sizes from the Hub file list, nothing of the model fetched; on WebGPU it goes on', async () => {
		const hub = await listening;
		const err = await openExportFromHub(entry, hub, false, () => {}, 'wasm').catch((e) => e);
		expect(err.code).toBe('too-large');
		expect(err.message).toMatch(/model\.onnx and its weights files are 3\.80 GiB \(\d+ bytes\).*at most 4\.00 GiB.*Nothing was downloaded/);
		expect(err.action).toMatch(/smaller model|quantized/);
		expect(requests).toEqual(['/api/models/someone/big/tree/main/onnx']);
		// On WebGPU the heap does not hold the weights: it goes on to fetch the graph (which this hub has not).
		await openExportFromHub(entry, hub, false, () => {}, 'webgpu').catch(() => {});
		expect(requests.some((u) => u.includes('/resolve/main/onnx/model.onnx'))).toBe(true);
	});
});

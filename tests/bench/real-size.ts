/**
 * Real-size benchmark (opt-in, not in CI): GPT-2-small-sized (124M) and Gemma-3-270M-sized (268M)
 * decoders with random weights, built by Loupe's own builder (onnx/real-size-decoders.ts), weights
 * inside the graph ("embedded") or in a sidecar ("external"), opened through the app's path
 * (`openExportGraph`, `findUnembedding`, `distinctParameterCount`, `SegmentRunner` on wasm in Node,
 * as `npm run generate` does) and measured: load time, peak memory, cutting at 1 and 3 hooks (the
 * old runner disposed first, as the engine does) and greedy tokens/s. One JSON object per line.
 *
 *   tsx tests/bench/real-size.ts [--model gpt2|gemma3] [--variant embedded|external] [--before]
 *                                [--tokens N] [--dir DIR]
 *
 * Each measurement runs in a fresh child process, so its peak RSS (getrusage's maxrss) is its own.
 * `--before` also measures the open path as it was (weights stored in the graph re-encoded into every
 * segment, `weightsInPlace: false`; the LM head copied and transposed), for the before/after figures.
 * Built models are kept in DIR (default: $TMPDIR/loupe-real-size) and reused. Memory figures:
 * `rss`, `arrayBuffers` (process.memoryUsage), `wasmHeap` (onnxruntime's WebAssembly.Memory, which
 * only grows), `peakRss` (the process's high-water mark) and `peakOverWeights`: (peak RSS − RSS
 * before the model was read) / the bytes of weights the files hold.
 */
import { spawnSync } from 'node:child_process';
import { register } from 'node:module';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

type Arch = 'gpt2' | 'gemma3';
type Variant = 'embedded' | 'external';

const args = process.argv.slice(2);
const opt = (name: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const dir = opt('--dir') ?? join(tmpdir(), 'loupe-real-size');
const tokens = Number(opt('--tokens') ?? 16);
const line = (o: Record<string, unknown>) => console.log(JSON.stringify(o));
const MB = 1024 ** 2;
const mb = (n: number) => Math.round(n / MB);

// Captures onnxruntime's heap: its wasm module makes one WebAssembly.Memory when it starts.
let wasmMemory: WebAssembly.Memory | null = null;
function watchWasmHeap() {
	const Original = WebAssembly.Memory;
	const Patched = function (this: unknown, d: WebAssembly.MemoryDescriptor) {
		const m = new Original(d);
		wasmMemory ??= m;
		return m;
	} as unknown as typeof WebAssembly.Memory;
	Patched.prototype = Original.prototype;
	(WebAssembly as { Memory: typeof WebAssembly.Memory }).Memory = Patched;
}

function memory() {
	const m = process.memoryUsage();
	return {
		rssMB: mb(m.rss),
		arrayBuffersMB: mb(m.arrayBuffers),
		wasmHeapMB: wasmMemory ? mb(wasmMemory.buffer.byteLength) : 0,
		peakRssMB: Math.round(process.resourceUsage().maxRSS / 1024)
	};
}

const folder = (arch: Arch, variant: Variant) => join(dir, `${arch}-${variant}`);

async function build(arch: Arch, variant: Variant) {
	const { buildRealSizeDecoder } = await import('../../src/lib/engine/model/onnx/real-size-decoders');
	const out = folder(arch, variant);
	mkdirSync(out, { recursive: true });
	const t0 = performance.now();
	const { builder, opset, shape } = buildRealSizeDecoder({ arch });
	if (variant === 'embedded') writeFileSync(join(out, 'model.onnx'), builder.toBytes(opset));
	else {
		const { graph, data } = builder.toExternal('model.onnx_data', { opset });
		writeFileSync(join(out, 'model.onnx_data'), data);
		writeFileSync(join(out, 'model.onnx'), graph);
	}
	const config =
		arch === 'gpt2'
			? { model_type: 'gpt2', n_positions: shape.positions }
			: { model_type: 'gemma3_text', max_position_embeddings: shape.positions };
	writeFileSync(join(out, 'config.json'), JSON.stringify(config));
	line({ bench: 'real_size_build', model: arch, variant, ms: Math.round(performance.now() - t0) });
}

/** The previous findUnembedding's copies (kept here only for the "before" figure): the head copied, then transposed into a second array. */
function unembeddingBefore(raw: Uint8Array, V: number, D: number, transposed: boolean): Float32Array {
	const values = new Float32Array(raw.slice().buffer);
	if (transposed) return values;
	const out = new Float32Array(V * D);
	for (let i = 0; i < D; i++) for (let v = 0; v < V; v++) out[v * D + i] = values[i * V + v];
	return out;
}

async function measure(arch: Arch, variant: Variant, before: boolean) {
	watchWasmHeap();
	const ort = await import('onnxruntime-web');
	const { openExportGraph } = await import('../../src/lib/engine/model/hf/exported-model');
	const { findUnembedding } = await import('../../src/lib/engine/model/onnx/unembedding');
	const { distinctParameterCount } = await import('../../src/lib/engine/model/parameter-count');
	const { SegmentRunner } = await import('../../src/lib/engine/model/runner');
	const { generateIds } = await import('../../src/lib/engine/model/generate');
	const { boundaryName } = await import('../../src/lib/engine/model/hooks');
	ort.env.wasm.numThreads = 1;
	ort.env.logLevel = 'error';
	const tag = { bench: 'real_size', model: arch, variant, path: before ? 'before' : 'after' };
	const base = memory();
	const rss0 = process.memoryUsage().rss;
	const out = folder(arch, variant);
	const view = (b: Buffer) => new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
	const t0 = performance.now();
	const graph = view(readFileSync(join(out, 'model.onnx')));
	const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
	const opened = await openExportGraph(graph, 'model.onnx', async (p) => view(readFileSync(join(out, p))), config, {
		backend: 'wasm',
		weightsInPlace: !before
	});
	const weightBytes = opened.weights.total;
	const tOpen = performance.now();
	const { trace } = opened.decoder;
	let unembedding: Float32Array | null;
	if (before) {
		// What the old code did: copy the head's bytes, then transpose them into a second array.
		const emb = opened.decoder.graph.initializers.get(trace.embedding)!;
		const file = opened.externalData.find((f) => f.path === emb.externalData?.find((e) => e.key === 'location')?.value);
		const offset = Number(emb.externalData?.find((e) => e.key === 'offset')?.value ?? 0);
		const raw = file ? file.data.subarray(offset, offset + trace.vocabSize * trace.dModel * 4) : emb.rawData!;
		unembedding = unembeddingBefore(raw, trace.vocabSize, trace.dModel, arch === 'gemma3');
	} else unembedding = findUnembedding(opened.decoder, opened.externalData)?.classifier ?? null;
	const tUnembed = performance.now();
	const parameters = distinctParameterCount(opened.decoder.graph, trace.embedding, opened.externalData);
	const tParams = performance.now();
	line({
		...tag,
		step: 'open',
		ms: Math.round(tOpen - t0),
		unembeddingMs: Math.round(tUnembed - tOpen),
		unembeddingInPlace: !!unembedding && opened.externalData.some((f) => f.data.buffer === unembedding!.buffer),
		parameterCountMs: Math.round(tParams - tUnembed),
		parameters,
		storedParameters: opened.decoder.graph.parameterCount(),
		weightsMB: mb(weightBytes),
		baseline: base,
		...memory()
	});

	const ids = [1, 464, 2068, 7586, 21831, 18045, 625, 262].map((x) => x % trace.vocabSize);
	const sampling = { maxTokens: tokens, temperature: 0, seed: 1, topK: 0, topP: 1, freqPenalty: 0 };
	const peak = () => (process.resourceUsage().maxRSS * 1024 - rss0) / weightBytes;
	const run = async (step: string, hooks: string[], n: number) => {
		const t = performance.now();
		const model = opened.segmentAt(hooks);
		const tCut = performance.now();
		const runner = await SegmentRunner.create(ort, model, 'wasm');
		const tSessions = performance.now();
		const m = memory();
		try {
			const r = await generateIds(runner, null, ids, { ...sampling, maxTokens: n });
			line({
				...tag,
				step,
				cutAt: hooks,
				segments: model.segments.length,
				segmentBytesMB: +(model.segments.reduce((a, s) => a + s.bytes.byteLength, 0) / MB).toFixed(2),
				cutMs: Math.round(tCut - t),
				sessionsMs: Math.round(tSessions - tCut),
				firstTokenMs: Math.round(r.firstTokenMs),
				tokens: r.tokens.length,
				tokensPerSecond: +r.tokensPerSecond.toFixed(2),
				ids: r.tokens.slice(0, 8),
				afterSessions: m,
				...memory(),
				peakOverWeights: +peak().toFixed(2)
			});
		} finally {
			await runner.dispose();
		}
	};
	const fail = (step: string) => (e: unknown) =>
		line({ ...tag, step, error: e instanceof Error ? e.message : String(e), ...memory(), peakOverWeights: +peak().toFixed(2) });
	await run('load_and_generate', [], tokens).catch(fail('load_and_generate'));
	const mid = Math.floor(trace.nLayers / 2);
	await run('cut_at_1', [boundaryName(mid, trace.nLayers)], 4).catch(fail('cut_at_1'));
	await run(
		'cut_at_3',
		[boundaryName(2, trace.nLayers), boundaryName(mid, trace.nLayers), `blocks.${trace.nLayers - 2}.hook_mlp_out`],
		4
	).catch(fail('cut_at_3'));
	line({
		...tag,
		step: 'end',
		weightsMB: mb(weightBytes),
		...memory(),
		peakOverWeights: +peak().toFixed(2),
		unembeddingKept: !!unembedding
	});
}

const child = opt('--child');
if (child) {
	// The engine's logits module imports its WGSL kernel Vite's way (`?raw`), as in src/cli/generate.ts.
	register('../../src/cli/raw-import.ts', import.meta.url);
	const [what, arch, variant, before] = child.split(':') as ['build' | 'measure', Arch, Variant, string];
	if (what === 'build') await build(arch, variant);
	else await measure(arch, variant, before === 'before');
} else {
	const archs: Arch[] = opt('--model') ? [opt('--model') as Arch] : ['gpt2', 'gemma3'];
	const variants: Variant[] = opt('--variant') ? [opt('--variant') as Variant] : ['embedded', 'external'];
	const self = fileURLToPath(import.meta.url);
	const spawnChild = (spec: string) => {
		// One child at a time: this machine's memory is shared, and each peak must be its own.
		const r = spawnSync(process.execPath, ['--import', 'tsx', self, '--child', spec, '--dir', dir, '--tokens', String(tokens)], {
			stdio: ['ignore', 'inherit', 'inherit']
		});
		if (r.status !== 0)
			line({ bench: 'real_size', child: spec, error: `exited with status ${r.status}${r.signal ? ` (${r.signal})` : ''}` });
	};
	for (const arch of archs)
		for (const variant of variants) {
			if (!existsSync(join(folder(arch, variant), 'config.json'))) spawnChild(`build:${arch}:${variant}`);
			if (args.includes('--before')) spawnChild(`measure:${arch}:${variant}:before`);
			spawnChild(`measure:${arch}:${variant}:after`);
		}
}

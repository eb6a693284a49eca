/**
 * Real-size benchmark (opt-in, not in CI): GPT-2-small-sized (124M) and Gemma-3-270M-sized (268M)
 * decoders with random weights, built by Loupe's own builder (onnx/real-size-decoders.ts), weights
 * inside the graph ("embedded") or in a sidecar ("external"), opened through the app's path
 * (`openExportGraph`, `findUnembedding`, `distinctParameterCount`, `SegmentRunner` on wasm in Node,
 * as `npm run generate` does) and measured: load time, peak memory, cutting at 1 and 3 hooks (the
 * old runner disposed first, as the engine does) and greedy tokens/s. One JSON object per line.
 *
 *   tsx tests/bench/real-size.ts [--model gpt2|gemma3] [--variant embedded|external] [--whole] [--before]
 *                                [--tokens N] [--dir DIR]
 *
 * Each measurement runs in a fresh child process, so its peak RSS (getrusage's maxrss) is its own.
 * `--whole` also measures the path before weights were read on demand (whole files kept beside
 * onnxruntime's copy; the unembedding found at open); `--before` that and the older one (weights
 * stored in the graph re-encoded into every segment, `weightsInPlace: false`; the LM head copied and
 * transposed), for the before/after figures.
 * Built models are kept in DIR (default: $TMPDIR/loupe-real-size) and reused. Memory figures:
 * `rss`, `arrayBuffers` (process.memoryUsage), `wasmHeap` (onnxruntime's WebAssembly.Memory, which
 * only grows), `peakRss` (the process's high-water mark) and `peakOverWeights`: (peak RSS − RSS
 * before the model was read) / the bytes of weights the files hold. In Node the RSS after a re-cut
 * also holds glibc's fragmentation of the freed read buffers (once a large buffer is freed glibc
 * raises its mmap threshold, so later ones come from its arenas, which keep their pages): with
 * `MALLOC_MMAP_THRESHOLD_=131072` GPT-2 size after cuts measured 1.41× where it measured 1.58×.
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

/**
 * 'after': the app's path now: the graph read whole to parse it, every weight (the sidecar, and
 * the graph's own weights) handed to onnxruntime as a WeightFile that reads one tensor's range at a
 * time, read again for each cut and dropped once the sessions exist; the unembedding read only
 * when an SAE is attached (the last step). 'whole': the path before that (whole files kept beside
 * onnxruntime's copy, the unembedding found at open). 'before': older still (weights re-encoded into
 * every segment, the head copied and transposed).
 */
type Path = 'after' | 'whole' | 'before';

async function measure(arch: Arch, variant: Variant, path: Path) {
	watchWasmHeap();
	const ort = await import('onnxruntime-web');
	const { openExportGraph } = await import('../../src/lib/engine/model/hf/exported-model');
	const { findUnembedding } = await import('../../src/lib/engine/model/onnx/unembedding');
	const { distinctParameterCount } = await import('../../src/lib/engine/model/parameter-count');
	const { SegmentRunner } = await import('../../src/lib/engine/model/runner');
	const { generateIds } = await import('../../src/lib/engine/model/generate');
	const { boundaryName } = await import('../../src/lib/engine/model/hooks');
	const { nodeWeightFile } = await import('../../src/cli/node-weight-file');
	ort.env.wasm.numThreads = 1;
	ort.env.logLevel = 'error';
	// For trying session options (e.g. '{"session":{"disable_prepacking":"1"}}'): every session gets them.
	// And for top-level ones ('{"enableCpuMemArena":false}'): LOUPE_SESSION_OPTIONS, merged into each session's.
	if (process.env.LOUPE_SESSION_EXTRA || process.env.LOUPE_SESSION_OPTIONS) {
		const extra = process.env.LOUPE_SESSION_EXTRA ? { extra: JSON.parse(process.env.LOUPE_SESSION_EXTRA) } : {};
		const top = JSON.parse(process.env.LOUPE_SESSION_OPTIONS ?? '{}');
		const create = ort.InferenceSession.create.bind(ort.InferenceSession);
		(ort.InferenceSession as { create: unknown }).create = (b: Uint8Array, o: Record<string, unknown>) =>
			create(b, { ...o, ...top, ...extra });
	}
	const lazy = path === 'after';
	const tag = {
		bench: 'real_size',
		model: arch,
		variant,
		path,
		...(process.env.LOUPE_SESSION_EXTRA ? { extra: process.env.LOUPE_SESSION_EXTRA } : {}),
		...(process.env.LOUPE_SESSION_OPTIONS ? { options: process.env.LOUPE_SESSION_OPTIONS } : {})
	};
	const base = memory();
	const rss0 = process.memoryUsage().rss;
	const out = folder(arch, variant);
	const view = (b: Buffer) => new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
	const t0 = performance.now();
	const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
	const sidecar = async (p: string) => (lazy ? nodeWeightFile(join(out, p), p) : view(readFileSync(join(out, p))));
	const opened = await openExportGraph(view(readFileSync(join(out, 'model.onnx'))), 'model.onnx', sidecar, config, {
		backend: 'wasm',
		weightsInPlace: path !== 'before',
		graphWeights: lazy ? nodeWeightFile(join(out, 'model.onnx')) : undefined
	});
	const weightBytes = opened.weights.total;
	const tOpen = performance.now();
	const { trace } = opened.decoder;
	let unembedding: Float32Array | null = null;
	if (path === 'before') {
		// What the old code did: copy the head's bytes, then transpose them into a second array.
		const emb = opened.decoder.graph.initializers.get(trace.embedding)!;
		const file = opened.externalData.find((f) => f.path === emb.externalData?.find((e) => e.key === 'location')?.value);
		const offset = Number(emb.externalData?.find((e) => e.key === 'offset')?.value ?? 0);
		const raw = file ? file.data.subarray(offset, offset + trace.vocabSize * trace.dModel * 4) : emb.rawData!;
		unembedding = unembeddingBefore(raw, trace.vocabSize, trace.dModel, arch === 'gemma3');
	} else if (path === 'whole') unembedding = findUnembedding(opened.decoder, opened.externalData)?.classifier ?? null;
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
	// The app's session: each cut gets its files read for it, and drops them once its sessions exist.
	const files = opened.externalData;
	const readWeights = () =>
		files.map((f) => ({
			path: f.path,
			data: f.path === 'model.onnx_data' ? nodeWeightFile(join(out, f.path), f.path) : nodeWeightFile(join(out, 'model.onnx'))
		}));
	if (lazy) opened.dropWeights();

	const ids = [1, 464, 2068, 7586, 21831, 18045, 625, 262].map((x) => x % trace.vocabSize);
	const sampling = { maxTokens: tokens, temperature: 0, seed: 1, topK: 0, topP: 1, freqPenalty: 0 };
	const peak = () => (process.resourceUsage().maxRSS * 1024 - rss0) / weightBytes;
	const run = async (step: string, hooks: string[], n: number) => {
		const t = performance.now();
		const model = opened.segmentAt(hooks);
		const tCut = performance.now();
		if (lazy) model.externalData = readWeights();
		const runner = await SegmentRunner.create(ort, model, 'wasm');
		if (lazy) delete model.externalData;
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
	if (lazy) {
		// An SAE attached: W_U read from the files for its feature logits, copied out of what was read.
		const t = performance.now();
		unembedding = findUnembedding(opened.decoder, readWeights())?.classifier ?? null;
		line({
			...tag,
			step: 'sae_unembedding',
			ms: Math.round(performance.now() - t),
			unembeddingMB: unembedding ? mb(unembedding.byteLength) : 0,
			...memory(),
			peakOverWeights: +peak().toFixed(2)
		});
	}
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
	const [what, arch, variant, path] = child.split(':') as ['build' | 'measure', Arch, Variant, Path];
	if (what === 'build') await build(arch, variant);
	else await measure(arch, variant, path);
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
			if (args.includes('--whole') || args.includes('--before')) spawnChild(`measure:${arch}:${variant}:whole`);
			spawnChild(`measure:${arch}:${variant}:after`);
		}
}

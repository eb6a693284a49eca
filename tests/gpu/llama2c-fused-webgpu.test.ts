// The fused llama2.c graph (onnxruntime's contrib ops) on onnxruntime-web's WebGPU EP in Chromium,
// against the plain TS reference forward: logits at every position over a prefill and KV-cached
// steps, whole and cut at hooks of every kind (each hook read from ORT's GPU buffer, one edited in
// place on the GPU); then the bench lines the fused graph is measured by (tokens/s over the plain
// graph, GPU dispatches per token), same page and adapter.
import { describe, expect, it, inject } from 'vitest';
import { loupeGpuDevice } from '../../src/lib/engine/model/gpu-device';
import * as ort from 'onnxruntime-web/webgpu';
import { readLlama2cCheckpoint } from '../../src/lib/engine/model/llama2c/checkpoint';
import { ReferenceLlama, type SublayerHook } from '../../src/lib/engine/model/llama2c/reference-forward';
import { buildLlamaOnnx } from '../../src/lib/engine/model/llama2c/to-onnx';
import { hookBoundary, isResidHook, parseHook } from '../../src/lib/engine/model/hooks';
import { SegmentRunner } from '../../src/lib/engine/model/runner';
import { readBuffer } from '../../src/lib/engine/gpu/buffers';
import { benchFusedGenerate } from '../../src/lib/engine/bench/fused-generate';
import { maxAbsDiff } from '../numeric';

declare module 'vitest' {
	export interface ProvidedContext {
		stories260KDir: string;
		fullBench: boolean;
	}
}

const fetchFixture = async (name: string) => (await fetch(`/@fs${inject('stories260KDir')}/${name}`)).arrayBuffer();
const tokens = [1, 403, 407, 261, 503, 300, 17, 45, 99];
const EDIT = 'blocks.2.hook_resid_pre';

describe('the fused stories260K graph on the WebGPU execution provider', () => {
	const every = [
		'blocks.0.hook_resid_post',
		'blocks.1.hook_attn_out',
		EDIT,
		'blocks.3.hook_mlp_in',
		'blocks.3.hook_mlp_out',
		'blocks.4.hook_resid_post'
	];
	// The app's graph is 'ops'; GroupQueryAttention is the alternative the bench compares. Cutting is the
	// same code for both, so CI cuts 'ops' only; LOUPE_BENCH=1 cuts 'gqa' too.
	for (const attention of ['ops', 'gqa'] as const)
		for (const cuts of attention === 'ops' || inject('fullBench') ? [[], every] : [[]])
			it(`attention '${attention}', ${cuts.length ? `cut at ${cuts.length} hooks (an edit at ${EDIT} on the GPU)` : 'whole'}: logits and hooks equal the reference`, async () => {
				ort.env.wasm.numThreads = 1;
				const weights = readLlama2cCheckpoint(await fetchFixture('stories260K.bin'));
				const { dim, vocabSize, nLayers } = weights.config;
				const runner = await SegmentRunner.create(ort, buildLlamaOnnx(weights, cuts, { fused: true, attention }), 'webgpu');
				const device = await loupeGpuDevice();
				const v = Float32Array.from({ length: dim }, (_, i) => Math.sin(i) * 0.5);
				const edit = cuts.length > 0;

				const ref = new ReferenceLlama(weights);
				const want: { logits: Float32Array; hooks: Map<string, Float32Array> }[] = [];
				for (const t of tokens) {
					const logits = ref.step(t, (b, x) => edit && b === hookBoundary(EDIT, nLayers) && x.forEach((_, i) => (x[i] += v[i])));
					const hooks = new Map<string, Float32Array>();
					for (const h of cuts) {
						const p = parseHook(h)!;
						hooks.set(h, (isResidHook(h) ? ref.residual[hookBoundary(h, nLayers)] : ref.sublayer[p.layer][p.kind as SublayerHook]).slice());
					}
					want.push({ logits, hooks });
				}
				const byCanonical = new Map(
					cuts.map((h) => [
						h.endsWith('resid_post') && hookBoundary(h, nLayers) < nLayers ? `blocks.${hookBoundary(h, nLayers)}.hook_resid_pre` : h,
						h
					])
				);

				let pos = 0;
				let worstLogits = 0;
				let worstHook = 0;
				const seen = new Set<string>();
				for (const chunk of [tokens.slice(0, 4), ...tokens.slice(4).map((t) => [t])]) {
					const { logits, rows } = await runner.forward(chunk, async (hook, resid, n) => {
						expect(resid.location).toBe('gpu-buffer');
						seen.add(hook);
						const buf = resid.gpuBuffer as GPUBuffer;
						const got = new Float32Array(await readBuffer(device, buf, n * dim * 4));
						const name = byCanonical.get(hook)!;
						for (let s = 0; s < n; s++) {
							const row = got.subarray(s * dim, (s + 1) * dim);
							if (hook === EDIT) row.forEach((x, i) => (row[i] = x + v[i])); // the reference's value is after the edit
							worstHook = Math.max(worstHook, maxAbsDiff(row, want[pos + s].hooks.get(name)!));
						}
						if (hook === EDIT) device.queue.writeBuffer(buf, 0, got);
					});
					const all = new Float32Array(await readBuffer(device, logits.gpuBuffer as GPUBuffer, rows * vocabSize * 4));
					for (let s = 0; s < rows; s++)
						worstLogits = Math.max(worstLogits, maxAbsDiff(all.subarray(s * vocabSize, (s + 1) * vocabSize), want[pos + s].logits));
					logits.dispose();
					pos += chunk.length;
				}
				await runner.dispose();
				console.log(
					`fused ('${attention}') on WebGPU, ${cuts.length ? `cut at ${cuts.length} hooks` : 'whole'}: max |logits − reference| ${worstLogits.toExponential(2)}, max |hook − reference| ${worstHook.toExponential(2)}`
				);
				expect([...seen].sort()).toEqual([...byCanonical.keys()].sort());
				expect(worstLogits).toBeLessThan(1e-4);
				if (cuts.length) expect(worstHook).toBeLessThan(1e-4);
			});

	it('bench: tokens/s over the plain graph and dispatches per token (prints the bench lines)', { timeout: 600_000 }, async () => {
		const weights = readLlama2cCheckpoint(await fetchFixture('stories260K.bin'));
		// CI checks the dispatch counts on a short run; LOUPE_BENCH=1 measures tokens/s properly.
		const full = inject('fullBench');
		const attentions: ('ops' | 'gqa')[] = full ? ['ops', 'gqa'] : ['ops'];
		const lines = await benchFusedGenerate(ort, weights, 'webgpu', { tokens: full ? 16 : 4, runs: full ? 3 : 1, attentions });
		for (const l of lines) console.log(JSON.stringify(l));
		expect(lines.map((l) => l.bench)).toEqual([
			...attentions.map(() => 'generate_fused_vs_unfused'),
			...attentions.map(() => 'dispatches_per_token')
		]);
		// Fewer dispatches for one token, in both fused graphs.
		for (const l of lines.slice(attentions.length)) expect(l.value).toBeLessThan(l.peer_value);
	});
});

// `npm run generate` against an uncached greedy run of the unmodified graph: every step feeds the
// whole sequence so far with an empty past (no cache to wire) and takes the argmax of the last
// row, written here straight on onnxruntime from the graph's own input list, without Loupe's
// DecoderIo. Every fixture export (the four torch exports and the three in onnx-exports); two
// through the CLI as a child process, the rest through the same function in-process to keep CI
// time down. Also the CLI's refusals: missing or short external data, an unknown hook.
import { LIFTOFF_ONLY } from './liftoff-only';
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import * as ort from 'onnxruntime-web';
import { runGenerate } from '../../src/cli/generate-run';
import { argmax } from '../numeric';
import { fixturesDir, repoRoot } from '../fixtures';

ort.env.wasm.numThreads = 1;
ort.env.logLevel = 'error';

const torch = (m: string) => resolve(fixturesDir, 'torch-exports', m, 'model.onnx');
const exported = (f: string) => resolve(fixturesDir, 'onnx-exports', f);

/** IEEE half to float, for fp16 logits (written out here so the reference shares no code with Loupe). */
function halfToFloat(h: number): number {
	const s = h & 0x8000 ? -1 : 1;
	const e = (h >> 10) & 0x1f;
	const f = h & 0x3ff;
	if (e === 0) return s * 2 ** -14 * (f / 1024);
	if (e === 31) return f ? NaN : s * Infinity;
	return s * 2 ** (e - 15) * (1 + f / 1024);
}

/** Greedy ids from the unmodified graph with no KV cache: the whole sequence each step, pasts of length 0. */
async function uncachedGreedy(file: string, prompt: number[], steps: number): Promise<number[]> {
	// The fixtures' sidecar names, as their READMEs give them.
	const externalData = ['model.onnx_data', 'model.onnx.data']
		.filter((path) => existsSync(join(dirname(file), path)))
		.map((path) => ({ path, data: new Uint8Array(readFileSync(join(dirname(file), path))) }));
	const session = await ort.InferenceSession.create(readFileSync(file), { executionProviders: ['wasm'], externalData });
	const ints = (type: string, values: number[], dims: number[]) =>
		type === 'int64'
			? new ort.Tensor('int64', BigInt64Array.from(values, BigInt), dims)
			: type === 'int32'
				? new ort.Tensor('int32', Int32Array.from(values), dims)
				: new ort.Tensor('float32', Float32Array.from(values), dims);
	const seq = [...prompt];
	try {
		for (let step = 0; step < steps; step++) {
			const n = seq.length;
			const feeds: Record<string, ort.Tensor> = {};
			for (const m of session.inputMetadata) {
				if (!m.isTensor) throw new Error(`${m.name} is not a tensor`);
				const shape = m.shape;
				if (m.name === 'input_ids') feeds[m.name] = ints(m.type, seq, [1, n]);
				else if (m.name === 'position_ids')
					feeds[m.name] = ints(
						m.type,
						seq.map((_, i) => i),
						[1, n]
					);
				else if (m.name === 'attention_mask' && shape.length === 2) feeds[m.name] = ints(m.type, new Array(n).fill(1), [1, n]);
				else if (m.name === 'attention_mask') {
					// Megatron's [B,1,max,max] causal mask (1 = may attend), which the graph slices itself.
					const M = shape[3] as number;
					feeds[m.name] = ints(
						m.type,
						Array.from({ length: M * M }, (_, i) => (i % M <= Math.floor(i / M) ? 1 : 0)),
						[1, 1, M, M]
					);
				} else {
					// A KV-cache input: batch 1, past length 0.
					const dims = shape.map((d) => (typeof d === 'number' ? d : /batch/.test(d) ? 1 : 0));
					feeds[m.name] =
						m.type === 'float16'
							? new ort.Tensor('float16', new Uint16Array(0), dims)
							: new ort.Tensor('float32', new Float32Array(0), dims);
				}
			}
			const out = await session.run(feeds);
			const logits = out.logits;
			const V = logits.dims[2];
			const raw = logits.data as Float32Array | Uint16Array;
			const row = logits.type === 'float16' ? Array.from(raw.subarray((n - 1) * V, n * V), halfToFloat) : raw.subarray((n - 1) * V, n * V);
			seq.push(argmax(row));
			for (const t of Object.values(out)) t.dispose();
		}
	} finally {
		await session.release();
	}
	return seq.slice(prompt.length);
}

const cli = resolve(repoRoot, 'src/cli/generate.ts');
// Run with onnxruntime's wasm on Liftoff, as this process runs it (liftoff-only.ts): same results, a third of the CPU.
const tsx = resolve(repoRoot, 'node_modules/.bin/tsx');
const runCli = (args: string[]) => spawnSync(tsx, [LIFTOFF_ONLY, cli, ...args], { encoding: 'utf8' });

describe('npm run generate equals an uncached greedy run of the unmodified graph', () => {
	it('as a child process: the torch Gemma 3 export (external data) and the ORT-fused GPT-2 cut at two hooks', async () => {
		const gemmaPrompt = [2, 42, 300, 7, 255];
		const g = runCli([torch('gemma3'), '--ids', gemmaPrompt.join(','), '--steps', '12']);
		expect(g.stderr).toBe('');
		expect(g.status).toBe(0);
		expect(JSON.parse(g.stdout)).toEqual({ ids: await uncachedGreedy(torch('gemma3'), gemmaPrompt, 12) });

		const fusedPrompt = [5, 17, 923, 4];
		const f = runCli([
			exported('gpt2_ort_fused_past.onnx'),
			'--ids',
			fusedPrompt.join(','),
			'--steps',
			'10',
			'--cut',
			'blocks.1.hook_resid_post,blocks.4.hook_resid_pre'
		]);
		expect(f.stderr).toBe('');
		expect(f.status).toBe(0);
		expect(JSON.parse(f.stdout)).toEqual({ ids: await uncachedGreedy(exported('gpt2_ort_fused_past.onnx'), fusedPrompt, 10) });
	});

	it.each([
		{ name: 'torch gpt2', file: torch('gpt2'), prompt: [15496, 11, 616, 3290, 318], steps: 12 },
		{ name: 'torch gptneox', file: torch('gptneox'), prompt: [0, 42, 300, 7, 255], steps: 12 },
		{
			name: 'torch llama, cut at blocks.1.hook_resid_pre and blocks.2.hook_mlp_out',
			file: torch('llama'),
			prompt: [1, 42, 300, 7, 255],
			steps: 12,
			cut: 'blocks.1.hook_resid_pre,blocks.2.hook_mlp_out'
		},
		{ name: 'Megatron GPT-2 (stacked KV, 4-D mask)', file: exported('gpt2_megatron_torch_unfused.onnx'), prompt: [1, 2, 3], steps: 8 },
		// Fused MultiHeadAttention reads both pasts: pairing both with present.N.key (the wiring before
		// the structural pairing) gives 19069,2677,28999,… here instead of 19069,2643,24959,…
		{
			name: 'model-builder fp16 Llama (MultiHeadAttention, external data)',
			file: exported('llama_modelbuilder_fp16/model.onnx'),
			prompt: [1, 306, 4997, 12, 88],
			steps: 10
		}
	])('in-process: $name', async ({ file, prompt, steps, cut }) => {
		const args = [file, '--ids', prompt.join(','), '--steps', String(steps), ...(cut ? ['--cut', cut] : [])];
		const { ids } = await runGenerate(args);
		expect(ids).toEqual(await uncachedGreedy(file, prompt, steps));
	});

	it('a seed reproduces a sampled run (temperature, top-k, top-p); another seed gives another', async () => {
		const args = (seed: number) => [
			torch('gptneox'),
			'--ids',
			'0,42',
			'--steps',
			'16',
			'--temperature',
			'1.5',
			'--top-k',
			'50',
			'--top-p',
			'0.95',
			'--seed',
			String(seed)
		];
		const a = await runGenerate(args(7));
		expect(a.ids).toHaveLength(16);
		expect((await runGenerate(args(7))).ids).toEqual(a.ids);
		expect((await runGenerate(args(8))).ids).not.toEqual(a.ids);
	});
});

describe('npm run generate refuses bad input with the reason', () => {
	const gemmaCopy = () => {
		const dir = mkdtempSync(join(tmpdir(), 'loupe-generate-'));
		copyFileSync(torch('gemma3'), join(dir, 'model.onnx'));
		return dir;
	};

	it('a missing external-data file: exit 1, the file named', () => {
		const dir = gemmaCopy();
		const r = runCli([join(dir, 'model.onnx'), '--ids', '2', '--steps', '2']);
		expect(r.status).toBe(1);
		expect(r.stdout).toBe('');
		expect(r.stderr).toMatch(/keeps its weights in "model\.onnx_data", which is not beside it/);
	});

	it('an external-data file shorter than the graph reads', async () => {
		const dir = gemmaCopy();
		writeFileSync(join(dir, 'model.onnx_data'), readFileSync(join(dirname(torch('gemma3')), 'model.onnx_data')).subarray(0, 100_000));
		await expect(runGenerate([join(dir, 'model.onnx'), '--ids', '2', '--steps', '2'])).rejects.toThrow(
			/model\.onnx_data is 100000 bytes, but .* reads weights up to byte 1351424 of it .*truncated/
		);
	});

	it('an unknown hook, a token id past the vocabulary, missing arguments', async () => {
		await expect(runGenerate([torch('llama'), '--ids', '1', '--steps', '2', '--cut', 'blocks.7.hook_resid_pre'])).rejects.toThrow(
			/no hook point "blocks\.7\.hook_resid_pre" in this 3-layer model/
		);
		await expect(runGenerate([torch('llama'), '--ids', '1,512', '--steps', '2'])).rejects.toThrow(
			/Token id 512 is out of range: .* 0 to 511/
		);
		await expect(runGenerate([torch('llama'), '--ids', '1'])).rejects.toThrow(/--steps N/);
		await expect(runGenerate([torch('llama'), '--ids', '1,x', '--steps', '2'])).rejects.toThrow(/"x" is not one/);
	});
});

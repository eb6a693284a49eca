/**
 * Runs an SAE's encoder on the GPU, straight from a residual buffer (e.g. ORT's output at a hook):
 * sae_preprocess → matmul_chunk (per chunk of W_enc columns, ReLU/JumpReLU epilogue) → top_k. Only ids and values per token
 * come back to the CPU. The reference is `Sae.encode` + `topK` in ../sae/sae.ts.
 *
 * W_enc is split by columns into chunks that each fit one storage binding
 * (device.limits.maxStorageBufferBindingSize, or a smaller `maxBindingBytes` for tests).
 */
import preprocessShader from '../../../../shaders/sae_preprocess.wgsl?raw';
import matmulShader from '../../../../shaders/matmul_chunk.wgsl?raw';
import { withWorkgroupReduce } from './wgsl-headers';
import { computePipeline, createStorage, readBuffer, storageFrom, uniformBuffer } from './buffers';
import { TopKKernel, TOP_K_MAX } from './top-k';
import { LoupeError } from '../errors';
import type { Sae } from '../sae/sae';

export interface TokenFeatures {
	tokens: number;
	k: number;
	ids: Uint32Array; // [tokens, k]
	values: Float32Array; // [tokens, k]
}

interface Chunk {
	offset: number;
	width: number;
	wEnc: GPUBuffer;
	bEnc: GPUBuffer;
	threshold: GPUBuffer;
}

const normCode = { none: 0, layer_norm: 1, constant_norm_rescale: 2, expected_average_only_in: 3 } as const;
// matmul_chunk epilogues: ReLU, JumpReLU; TopK takes the ReLU'd pre-activations, then top_k masks.
const activationCode = { relu: 0, jumprelu: 1, topk: 0 } as const;

export class SaeEncoder {
	private scratch: { tokens: number; xp: GPUBuffer; undo: GPUBuffer; acts: GPUBuffer; ids: GPUBuffer; vals: GPUBuffer; k: number } | null =
		null;

	private constructor(
		private device: GPUDevice,
		readonly sae: Sae,
		private pipelines: { preprocess: GPUComputePipeline; encode: GPUComputePipeline },
		private topK: TopKKernel,
		readonly chunks: Chunk[],
		private bDec: GPUBuffer
	) {}

	static async create(device: GPUDevice, sae: Sae, opts: { maxBindingBytes?: number } = {}): Promise<SaeEncoder> {
		const { dIn, dSae } = sae.cfg;
		if (sae.cfg.architecture === 'topk' && sae.cfg.k! > TOP_K_MAX)
			throw new LoupeError(
				'not-an-sae',
				`This TopK SAE keeps k=${sae.cfg.k} features a token; Loupe's GPU top-k handles up to ${TOP_K_MAX}.`,
				'Choose an SAE with a smaller k.'
			);
		const limit = Math.min(opts.maxBindingBytes ?? Infinity, device.limits.maxStorageBufferBindingSize);
		const maxWidth = Math.floor(limit / (dIn * 4) / 64) * 64 || Math.floor(limit / (dIn * 4));
		if (maxWidth < 1) throw new Error(`d_in ${dIn} does not fit one storage binding of ${limit} bytes`);
		const upload = (data: Float32Array, label: string) => storageFrom(device, data, label);
		const chunks: Chunk[] = [];
		for (let offset = 0; offset < dSae; offset += maxWidth) {
			const width = Math.min(maxWidth, dSae - offset);
			const w = new Float32Array(dIn * width);
			for (let i = 0; i < dIn; i++) w.set(sae.w.wEnc.subarray(i * dSae + offset, i * dSae + offset + width), i * width);
			chunks.push({
				offset,
				width,
				wEnc: upload(w, `sae.w_enc[${offset}:]`),
				bEnc: upload(sae.w.bEnc.slice(offset, offset + width), 'sae.b_enc'),
				threshold: upload((sae.w.threshold ?? new Float32Array(dSae)).slice(offset, offset + width), 'sae.threshold')
			});
		}
		const [preprocess, encode, topK] = await Promise.all([
			computePipeline(device, withWorkgroupReduce(preprocessShader), 'sae_preprocess'),
			computePipeline(device, matmulShader, 'matmul_chunk'),
			TopKKernel.create(device)
		]);
		return new SaeEncoder(device, sae, { preprocess, encode }, topK, chunks, upload(sae.w.bDec, 'sae.b_dec'));
	}

	private ensureScratch(tokens: number, k: number) {
		const s = this.scratch;
		if (s && s.tokens >= tokens && s.k >= k) return s;
		if (s) for (const b of [s.xp, s.undo, s.acts, s.ids, s.vals]) b.destroy();
		const { dIn, dSae } = this.sae.cfg;
		const d = this.device;
		this.scratch = {
			tokens,
			k,
			xp: createStorage(d, tokens * dIn * 4, 'sae.xp'),
			undo: createStorage(d, tokens * 2 * 4, 'sae.undo'),
			acts: createStorage(d, tokens * dSae * 4, 'sae.acts'),
			ids: createStorage(d, tokens * k * 4, 'sae.topk_ids'),
			vals: createStorage(d, tokens * k * 4, 'sae.topk_vals')
		};
		return this.scratch;
	}

	private uniform(words: (number | { f32: number })[]): GPUBuffer {
		return uniformBuffer(this.device, words);
	}

	/**
	 * Encodes `tokens` rows of the residual in `x` (bound as its first tokens·d_in floats) and
	 * returns each token's top `k` features. Activations stay on the GPU (see `readActivations`).
	 */
	async encodeTopK(x: GPUBuffer, tokens: number, k: number): Promise<TokenFeatures> {
		const { cfg } = this.sae;
		const { dIn, dSae } = cfg;
		k = Math.min(k, dSae, TOP_K_MAX);
		const s = this.ensureScratch(tokens, Math.max(k, cfg.k ?? 0));
		const d = this.device;
		const temp: GPUBuffer[] = [];
		const enc = d.createCommandEncoder({ label: 'sae_encode' });
		const pass = enc.beginComputePass();
		const run = (
			pipeline: GPUComputePipeline,
			buffers: { buffer: GPUBuffer; size?: number }[],
			uniform: GPUBuffer,
			groups: [number, number?]
		) => {
			temp.push(uniform);
			pass.setPipeline(pipeline);
			pass.setBindGroup(
				0,
				d.createBindGroup({
					layout: pipeline.getBindGroupLayout(0),
					entries: [...buffers, { buffer: uniform }].map((resource, binding) => ({ binding, resource }))
				})
			);
			pass.dispatchWorkgroups(groups[0], groups[1] ?? 1);
		};
		// tokens, d_in, center, norm, norm_scale, apply_b_dec
		run(
			this.pipelines.preprocess,
			[{ buffer: x, size: tokens * dIn * 4 }, { buffer: this.bDec }, { buffer: s.xp }, { buffer: s.undo }],
			this.uniform([
				tokens,
				dIn,
				cfg.centerInput ? 1 : 0,
				normCode[cfg.normalizeActivations],
				{ f32: cfg.normScale ?? 1 },
				cfg.applyBDecToInput ? 1 : 0,
				0,
				0
			]),
			[tokens]
		);
		for (const c of this.chunks)
			run(
				this.pipelines.encode,
				[{ buffer: s.xp }, { buffer: c.wEnc }, { buffer: c.bEnc }, { buffer: c.threshold }, { buffer: s.acts }],
				// tokens, k, n, a_stride, a_offset, out_stride, out_offset, epilogue
				this.uniform([tokens, dIn, c.width, dIn, 0, dSae, c.offset, activationCode[cfg.architecture]]),
				[Math.ceil(c.width / 64), Math.ceil(tokens / 8)]
			);
		if (cfg.architecture === 'topk')
			temp.push(...this.topK.record(pass, s.acts, tokens, dSae, Math.min(cfg.k!, dSae), true, s.ids, s.vals));
		temp.push(...this.topK.record(pass, s.acts, tokens, dSae, k, false, s.ids, s.vals));
		pass.end();
		d.queue.submit([enc.finish()]);
		const [ids, values] = await Promise.all([readBuffer(d, s.ids, tokens * k * 4), readBuffer(d, s.vals, tokens * k * 4)]);
		for (const b of temp) b.destroy();
		return { tokens, k, ids: new Uint32Array(ids), values: new Float32Array(values) };
	}

	/** Per token (mean, scale) of the last encode's preprocessing, to undo it after decoding. */
	get undoBuffer(): GPUBuffer {
		return this.scratch!.undo;
	}

	/** The activations buffer if there has been an encode, else a small placeholder (for kernels that bind it unused). */
	activationsBufferOrDummy(): GPUBuffer {
		return this.scratch?.acts ?? this.ensureScratch(1, 1).acts;
	}

	/** The buffer holding the last encode's activations [tokens, d_sae] (for corpus statistics). */
	get activationsBuffer(): GPUBuffer {
		return this.scratch!.acts;
	}

	/** All activations [tokens, d_sae] of the last encode (for tests and feature pages). */
	async readActivations(tokens: number): Promise<Float32Array> {
		return new Float32Array(await readBuffer(this.device, this.scratch!.acts, tokens * this.sae.cfg.dSae * 4));
	}

	/** Feature f's activation at each of the first `tokens` tokens of the last encode. */
	async readFeature(f: number, tokens: number): Promise<Float32Array> {
		const { dSae } = this.sae.cfg;
		const d = this.device;
		const column = d.createBuffer({
			size: Math.max(16, tokens * 4),
			usage: GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC | GPUBufferUsage.STORAGE
		});
		const enc = d.createCommandEncoder({ label: 'sae.read_feature' });
		for (let t = 0; t < tokens; t++) enc.copyBufferToBuffer(this.scratch!.acts, (t * dSae + f) * 4, column, t * 4, 4);
		d.queue.submit([enc.finish()]);
		const out = new Float32Array(await readBuffer(d, column, tokens * 4));
		column.destroy();
		return out;
	}

	destroy() {
		for (const c of this.chunks) for (const b of [c.wEnc, c.bEnc, c.threshold]) b.destroy();
		this.bDec.destroy();
		const s = this.scratch;
		if (s) for (const b of [s.xp, s.undo, s.acts, s.ids, s.vals]) b.destroy();
		this.scratch = null;
	}
}

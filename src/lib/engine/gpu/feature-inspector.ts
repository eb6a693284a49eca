/**
 * A feature's page on the GPU: its logit effects (feature_logits.wgsl) and nearest features by
 * decoder cosine (decoder_cosine.wgsl), each followed by top_k.wgsl so only ids and values come
 * back. W_dec is split by rows into chunks that each fit one storage binding.
 * References: ../sae/features.ts.
 */
import logitsShader from '../../../../shaders/feature_logits.wgsl?raw';
import cosineShader from '../../../../shaders/decoder_cosine.wgsl?raw';
import { computePipeline, createStorage, readBuffer, storageFrom, uniformBuffer } from './buffers';
import { TopKKernel } from './top-k';
import type { Sae } from '../sae/sae';
import type { RankedItem, Unembedding } from '../sae/features';

export class FeatureInspector {
	private constructor(
		private device: GPUDevice,
		readonly sae: Sae,
		private pipelines: { logits: GPUComputePipeline; cosine: GPUComputePipeline },
		private topK: TopKKernel,
		/** W_dec by rows; the reconstruction kernels read these too. */
		readonly chunks: { offset: number; rows: number; buffer: GPUBuffer }[],
		private unembed: { buffer: GPUBuffer; norm: GPUBuffer; vocab: number } | null
	) {}

	static async create(device: GPUDevice, sae: Sae, unembedding: Unembedding | null, opts: { maxBindingBytes?: number } = {}) {
		const { dIn, dSae } = sae.cfg;
		const limit = Math.min(opts.maxBindingBytes ?? Infinity, device.limits.maxStorageBufferBindingSize);
		const perChunk = Math.max(1, Math.floor(limit / (dIn * 4)));
		const upload = (data: Float32Array, label: string) => storageFrom(device, data, label);
		const chunks = [];
		for (let offset = 0; offset < dSae; offset += perChunk) {
			const rows = Math.min(perChunk, dSae - offset);
			chunks.push({ offset, rows, buffer: upload(sae.w.wDec.subarray(offset * dIn, (offset + rows) * dIn), `sae.w_dec[${offset}:]`) });
		}
		const unembed = unembedding
			? {
					buffer: upload(unembedding.classifier, 'unembed'),
					norm: upload(unembedding.normWeight ?? new Float32Array(dIn).fill(1), 'final_norm.weight'),
					vocab: unembedding.vocabSize
				}
			: null;
		const [logits, cosine, topK] = await Promise.all([
			computePipeline(device, logitsShader, 'feature_logits'),
			computePipeline(device, cosineShader, 'decoder_cosine'),
			TopKKernel.create(device)
		]);
		return new FeatureInspector(device, sae, { logits, cosine }, topK, chunks, unembed);
	}

	/** Copies W_dec[f] into a small buffer. */
	private decoderRow(enc: GPUCommandEncoder, f: number): GPUBuffer {
		const { dIn } = this.sae.cfg;
		const c = this.chunks.find((c) => f >= c.offset && f < c.offset + c.rows)!;
		const row = createStorage(this.device, dIn * 4, 'feature.decoder_row');
		enc.copyBufferToBuffer(c.buffer, (f - c.offset) * dIn * 4, row, 0, dIn * 4);
		return row;
	}

	private uniform(words: number[]) {
		return uniformBuffer(this.device, words);
	}

	private dispatch(pass: GPUComputePassEncoder, pipeline: GPUComputePipeline, buffers: GPUBuffer[], groups: number) {
		pass.setPipeline(pipeline);
		pass.setBindGroup(
			0,
			this.device.createBindGroup({
				layout: pipeline.getBindGroupLayout(0),
				entries: buffers.map((buffer, binding) => ({ binding, resource: { buffer } }))
			})
		);
		pass.dispatchWorkgroups(groups);
	}

	/** Runs top_k over `rows` rows of `n` values in `m`; returns [rows][k]. */
	private async topRows(
		enc: GPUCommandEncoder,
		pass: GPUComputePassEncoder,
		m: GPUBuffer,
		rows: number,
		n: number,
		k: number,
		temp: GPUBuffer[]
	) {
		const ids = createStorage(this.device, rows * k * 4, 'top.ids');
		const vals = createStorage(this.device, rows * k * 4, 'top.vals');
		temp.push(ids, vals, ...this.topK.record(pass, m, rows, n, k, false, ids, vals));
		pass.end();
		this.device.queue.submit([enc.finish()]);
		const [i, v] = await Promise.all([readBuffer(this.device, ids, rows * k * 4), readBuffer(this.device, vals, rows * k * 4)]);
		for (const b of temp) b.destroy();
		const I = new Uint32Array(i);
		const V = new Float32Array(v);
		return Array.from({ length: rows }, (_, r) => Array.from({ length: k }, (_, j) => ({ id: I[r * k + j], value: V[r * k + j] })));
	}

	/** The k tokens whose logits the feature raises most, and the k it lowers most. */
	async logitEffects(f: number, k: number): Promise<{ positive: RankedItem[]; negative: RankedItem[] }> {
		if (!this.unembed) throw new Error('this model has no unembedding to read');
		const { dIn } = this.sae.cfg;
		const V = this.unembed.vocab;
		k = Math.min(k, V);
		const enc = this.device.createCommandEncoder({ label: 'feature_logits' });
		const row = this.decoderRow(enc, f);
		const out = createStorage(this.device, 2 * V * 4, 'feature.logit_effects');
		const u = this.uniform([V, dIn, 0, 0]);
		const pass = enc.beginComputePass();
		this.dispatch(pass, this.pipelines.logits, [row, this.unembed.norm, this.unembed.buffer, out, u], Math.ceil(V / 64));
		const [positive, negativeNeg] = await this.topRows(enc, pass, out, 2, V, k, [row, out, u]);
		return { positive, negative: negativeNeg.map((x) => ({ id: x.id, value: -x.value })) };
	}

	/** The k features whose decoder directions are closest to f's (f itself left out). */
	async nearest(f: number, k: number): Promise<RankedItem[]> {
		const { dIn, dSae } = this.sae.cfg;
		k = Math.min(k, dSae - 1);
		const enc = this.device.createCommandEncoder({ label: 'decoder_cosine' });
		const row = this.decoderRow(enc, f);
		const out = createStorage(this.device, dSae * 4, 'feature.cosines');
		const temp = [row, out];
		const pass = enc.beginComputePass();
		for (const c of this.chunks) {
			const u = this.uniform([c.rows, dIn, c.offset, 0]);
			temp.push(u);
			this.dispatch(pass, this.pipelines.cosine, [c.buffer, row, out, u], Math.ceil(c.rows / 64));
		}
		const [top] = await this.topRows(enc, pass, out, 1, dSae, k + 1, temp);
		return top.filter((x) => x.id !== f).slice(0, k);
	}

	destroy() {
		for (const c of this.chunks) c.buffer.destroy();
		this.unembed?.buffer.destroy();
		this.unembed?.norm.destroy();
	}
}

/**
 * Decodes the encoder's activations (matmul_chunk.wgsl, per W_dec chunk) and measures the
 * reconstruction error against the residual at the hook (recon_metrics.wgsl). Only a few numbers
 * per token come back. Reference: ../sae/reconstruction.ts.
 */
import matmulShader from '../../../../shaders/matmul_chunk.wgsl?raw';
import metricsShader from '../../../../shaders/recon_metrics.wgsl?raw';
import { withWorkgroupReduce } from './wgsl-headers';
import { computePipeline, createStorage, readBuffer, storageFrom, uniformBuffer } from './buffers';
import { metricsFromSums, type ReconMetrics } from '../sae/reconstruction';
import type { Sae } from '../sae/sae';

export class SaeReconstruction {
	private constructor(
		private device: GPUDevice,
		private sae: Sae,
		private chunks: { offset: number; rows: number; buffer: GPUBuffer }[],
		private bDec: GPUBuffer,
		private p: { decode: GPUComputePipeline; metrics: GPUComputePipeline; columns: GPUComputePipeline }
	) {}

	static async create(device: GPUDevice, sae: Sae, decoderChunks: { offset: number; rows: number; buffer: GPUBuffer }[]) {
		const bDec = storageFrom(device, sae.w.bDec, 'sae.b_dec');
		const [decode, metrics, columns] = await Promise.all([
			computePipeline(device, matmulShader, 'matmul_chunk'),
			computePipeline(device, withWorkgroupReduce(metricsShader), 'recon_metrics'),
			computePipeline(device, withWorkgroupReduce(metricsShader), 'recon_metrics', 'column_sums')
		]);
		return new SaeReconstruction(device, sae, decoderChunks, bDec, { decode, metrics, columns });
	}

	/** x: the residual at the hook (first tokens·d_in floats); acts, undo: the encoder's buffers. */
	async metrics(x: GPUBuffer, acts: GPUBuffer, undo: GPUBuffer, tokens: number, first = 1): Promise<ReconMetrics> {
		const d = this.device;
		const { dIn, dSae } = this.sae.cfg;
		const xhat = createStorage(d, tokens * dIn * 4, 'sae.xhat');
		const out = createStorage(d, (4 * tokens + dIn) * 4, 'sae.recon_sums');
		const temp = [xhat, out];
		const uniform = (w: number[]) => {
			const u = uniformBuffer(d, [...w, 0, 0, 0, 0, 0, 0, 0, 0].slice(0, 8));
			temp.push(u);
			return u;
		};
		const enc = d.createCommandEncoder({ label: 'sae_reconstruction' });
		const pass = enc.beginComputePass();
		const run = (pl: GPUComputePipeline, entries: [number, GPUBindingResource][], groups: [number, number?]) => {
			pass.setPipeline(pl);
			pass.setBindGroup(
				0,
				d.createBindGroup({ layout: pl.getBindGroupLayout(0), entries: entries.map(([binding, resource]) => ({ binding, resource })) })
			);
			pass.dispatchWorkgroups(groups[0], groups[1] ?? 1);
		};
		// tokens, k, n, a_stride, a_offset, out_stride, out_offset, epilogue (2: + b_dec, 3: accumulate)
		this.chunks.forEach((c, i) =>
			run(
				this.p.decode,
				[
					[0, { buffer: acts, size: tokens * dSae * 4 }],
					[1, { buffer: c.buffer }],
					[2, { buffer: this.bDec }],
					[3, { buffer: this.bDec }],
					[4, { buffer: xhat }],
					[5, { buffer: uniform([tokens, c.rows, dIn, dSae, c.offset, dIn, 0, i === 0 ? 2 : 3]) }]
				],
				[Math.ceil(dIn / 64), Math.ceil(tokens / 8)]
			)
		);
		const u = uniform([tokens, dIn, first]);
		run(
			this.p.metrics,
			[
				[0, { buffer: x, size: tokens * dIn * 4 }],
				[1, { buffer: xhat }],
				[2, { buffer: undo, size: tokens * 8 }],
				[3, { buffer: out }],
				[4, { buffer: u }]
			],
			[tokens]
		);
		run(
			this.p.columns,
			[
				[0, { buffer: x, size: tokens * dIn * 4 }],
				[3, { buffer: out }],
				[4, { buffer: u }]
			],
			[Math.ceil(dIn / 64)]
		);
		pass.end();
		d.queue.submit([enc.finish()]);
		const sums = new Float32Array(await readBuffer(d, out, (4 * tokens + dIn) * 4));
		for (const b of temp) b.destroy();
		return metricsFromSums(sums.subarray(0, 4 * tokens), sums.subarray(4 * tokens), tokens, first, dIn);
	}

	destroy() {
		this.bDec.destroy();
	}
}

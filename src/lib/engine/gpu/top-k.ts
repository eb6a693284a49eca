/**
 * Dispatches shaders/top_k.wgsl: per-row top-k (value descending, index ascending), optionally
 * zeroing what ranks after the k-th. Used by the SAE encoder and the feature inspector.
 * Reference: `topK` in ../sae/sae.ts.
 */
import shader from '../../../../shaders/top_k.wgsl?raw';
import { computePipeline, createStorage, uniformBuffer } from './buffers';

export const TOP_K_MAX = 128;
const WG = 64;

export class TopKKernel {
	private constructor(
		private device: GPUDevice,
		private pipeline: GPUComputePipeline
	) {}

	static async create(device: GPUDevice) {
		return new TopKKernel(device, await computePipeline(device, shader, 'top_k'));
	}

	/**
	 * Records the dispatch into `pass`: top k of each of `rows` rows of `n` values in `m`, into `ids`
	 * and `vals` ([rows, k]). Returns the temporary buffers to destroy once the work is done.
	 */
	record(
		pass: GPUComputePassEncoder,
		m: GPUBuffer,
		rows: number,
		n: number,
		k: number,
		mask: boolean,
		ids: GPUBuffer,
		vals: GPUBuffer
	): GPUBuffer[] {
		if (k < 1 || k > TOP_K_MAX || k > n) throw new Error(`top_k: k=${k} must be in 1..${Math.min(TOP_K_MAX, n)}`);
		const d = this.device;
		const u = uniformBuffer(d, [rows, n, k, mask ? 1 : 0]);
		const sv = createStorage(d, rows * WG * k * 4, 'top_k.scratch_v');
		const si = createStorage(d, rows * WG * k * 4, 'top_k.scratch_i');
		pass.setPipeline(this.pipeline);
		pass.setBindGroup(
			0,
			d.createBindGroup({
				layout: this.pipeline.getBindGroupLayout(0),
				entries: [m, ids, vals, u, sv, si].map((buffer, binding) => ({ binding, resource: { buffer } }))
			})
		);
		pass.dispatchWorkgroups(rows);
		return [u, sv, si];
	}
}

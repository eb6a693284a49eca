/**
 * Accumulates corpus statistics for every feature on the GPU (shaders/feature_stats.wgsl), reading
 * the activations the SAE encoder left in its buffer. Reference: ../sae/corpus-stats.ts.
 */
import shader from '../../../../shaders/feature_stats.wgsl?raw';
import { computePipeline, createStorage, readBuffer, uniformBuffer } from './buffers';
import { HIST_BINS, TOP_EXAMPLES, type FeatureStats } from '../sae/corpus-stats';

export class FeatureStatsGpu {
	private tokens = 0;
	private constructor(
		private device: GPUDevice,
		private pipeline: GPUComputePipeline,
		readonly dSae: number,
		private b: { fires: GPUBuffer; maxAct: GPUBuffer; hist: GPUBuffer; topVal: GPUBuffer; topRef: GPUBuffer }
	) {}

	static async create(device: GPUDevice, dSae: number) {
		const mk = (n: number, label: string) => createStorage(device, n * 4, label); // zero-initialised
		return new FeatureStatsGpu(device, await computePipeline(device, shader, 'feature_stats'), dSae, {
			fires: mk(dSae, 'stats.fires'),
			maxAct: mk(dSae, 'stats.max_act'),
			hist: mk(dSae * HIST_BINS, 'stats.hist'),
			topVal: mk(dSae * TOP_EXAMPLES, 'stats.top_val'),
			topRef: mk(dSae * TOP_EXAMPLES * 2, 'stats.top_ref')
		});
	}

	/** Adds one context's activations (acts holds at least tokens × dSae floats). */
	accumulate(acts: GPUBuffer, tokens: number, context: number, first = 1) {
		const d = this.device;
		this.tokens += Math.max(0, tokens - first);
		const u = uniformBuffer(d, [tokens, this.dSae, context, first, TOP_EXAMPLES, HIST_BINS, 0, 0]);
		const { fires, maxAct, hist, topVal, topRef } = this.b;
		const enc = d.createCommandEncoder({ label: 'feature_stats' });
		const pass = enc.beginComputePass();
		pass.setPipeline(this.pipeline);
		pass.setBindGroup(
			0,
			d.createBindGroup({
				layout: this.pipeline.getBindGroupLayout(0),
				entries: [
					{ buffer: acts, size: tokens * this.dSae * 4 },
					{ buffer: fires },
					{ buffer: maxAct },
					{ buffer: hist },
					{ buffer: topVal },
					{ buffer: topRef },
					{ buffer: u }
				].map((resource, binding) => ({ binding, resource }))
			})
		);
		pass.dispatchWorkgroups(Math.ceil(this.dSae / 64));
		pass.end();
		d.queue.submit([enc.finish()]);
		d.queue.onSubmittedWorkDone().then(() => u.destroy());
	}

	async read(): Promise<FeatureStats> {
		const d = this.device;
		const n = this.dSae;
		const { fires, maxAct, hist, topVal, topRef } = this.b;
		const [a, b, c, e, g] = await Promise.all([
			readBuffer(d, fires, n * 4),
			readBuffer(d, maxAct, n * 4),
			readBuffer(d, hist, n * HIST_BINS * 4),
			readBuffer(d, topVal, n * TOP_EXAMPLES * 4),
			readBuffer(d, topRef, n * TOP_EXAMPLES * 8)
		]);
		return {
			dSae: n,
			tokens: this.tokens,
			fires: new Uint32Array(a),
			maxAct: new Float32Array(b),
			hist: new Uint32Array(c),
			topVal: new Float32Array(e),
			topRef: new Uint32Array(g)
		};
	}

	destroy() {
		for (const x of Object.values(this.b)) x.destroy();
	}
}

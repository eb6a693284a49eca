/**
 * Applies a steering setup to the residual buffer at the hook, in place, between two segments
 * (shaders/steer.wgsl). Clamp specs read the SAE's activations, so the encoder runs first.
 * Reference: ../steer/spec.ts.
 */
import shader from '../../../../shaders/steer.wgsl?raw';
import { computePipeline, createStorage, storageFrom, uniformBuffer } from './buffers';
import { steerDirections, type SteerFeature } from '../steer/spec';
import type { Sae } from '../sae/sae';

export class SteerKernel {
	private dirs: GPUBuffer | null = null;
	private specs: GPUBuffer | null = null;
	private uploaded: string = '';

	private constructor(
		private device: GPUDevice,
		private pipeline: GPUComputePipeline,
		private sae: Sae
	) {}

	static async create(device: GPUDevice, sae: Sae) {
		return new SteerKernel(device, await computePipeline(device, shader, 'steer'), sae);
	}

	/** Uploads directions and specs when the setup changed (a slider moved), else reuses them. */
	private upload(specs: SteerFeature[]) {
		const key = JSON.stringify(specs);
		if (key === this.uploaded) return;
		this.dirs?.destroy();
		this.specs?.destroy();
		const d = this.device;
		this.dirs = storageFrom(d, steerDirections(this.sae, specs), 'steer.dirs');
		const raw = new ArrayBuffer(Math.max(16, specs.length * 16));
		const u = new Uint32Array(raw);
		const f = new Float32Array(raw);
		specs.forEach((s, j) => {
			u[4 * j] = s.mode === 'clamp' ? 1 : 0;
			u[4 * j + 1] = s.feature;
			f[4 * j + 2] = s.value;
		});
		this.specs = createStorage(d, raw.byteLength, 'steer.specs');
		d.queue.writeBuffer(this.specs, 0, raw);
		this.uploaded = key;
	}

	/** resid: [tokens, d_in] (ORT's buffer); acts: the encoder's activations (any buffer if no clamp). */
	apply(resid: GPUBuffer, tokens: number, specs: SteerFeature[], acts: GPUBuffer, skipPosition: number) {
		if (!specs.length) return;
		this.upload(specs);
		const d = this.device;
		const { dIn, dSae } = this.sae.cfg;
		const u = uniformBuffer(d, [tokens, dIn, specs.length, dSae, skipPosition < 0 ? 0xffffffff : skipPosition, 0, 0, 0]);
		const enc = d.createCommandEncoder({ label: 'steer' });
		const pass = enc.beginComputePass();
		pass.setPipeline(this.pipeline);
		pass.setBindGroup(0, d.createBindGroup({
			layout: this.pipeline.getBindGroupLayout(0),
			entries: [{ buffer: resid, size: tokens * dIn * 4 }, { buffer: this.dirs! }, { buffer: this.specs! }, { buffer: acts }, { buffer: u }].map((resource, binding) => ({ binding, resource }))
		}));
		pass.dispatchWorkgroups(Math.ceil(dIn / 64), tokens);
		pass.end();
		d.queue.submit([enc.finish()]);
		d.queue.onSubmittedWorkDone().then(() => u.destroy());
	}

	destroy() {
		this.dirs?.destroy();
		this.specs?.destroy();
	}
}

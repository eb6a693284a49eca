/**
 * Applies steering to the residual buffer at a hook, in place, between two segments
 * (shaders/steer.wgsl): rows of directions, each added with a coefficient, or (clamp) with
 * target − the SAE's activation, so for clamps the encoder runs first. The directions are SAE
 * decoder rows or saved steering vectors. Reference: ../steer/spec.ts.
 */
import shader from '../../../../shaders/steer.wgsl?raw';
import { computePipeline, createStorage, storageFrom, uniformBuffer } from './buffers';

/** One direction's rule: add `value`, or clamp activation `feature` of the SAE to `value`. */
export interface SteerRow {
	mode: 'add' | 'clamp';
	feature: number;
	value: number;
}

export class SteerKernel {
	private dirs: GPUBuffer | null = null;
	private specs: GPUBuffer | null = null;
	private uploaded: string = '';
	private uploadedSpecs: string = '';

	private constructor(
		private device: GPUDevice,
		private pipeline: GPUComputePipeline
	) {}

	static async create(device: GPUDevice) {
		return new SteerKernel(device, await computePipeline(device, shader, 'steer'));
	}

	/**
	 * Uploads the directions when `key` changed, and the specs (mode, feature, strength) whenever they
	 * differ from the last ones: a strength is not part of what the caller keys its directions by, and
	 * a slider that moved must act (a contrast vector's strength was once ignored until reload).
	 */
	private upload(dirs: () => Float32Array, specs: SteerRow[], key: string) {
		const d = this.device;
		if (key !== this.uploaded || !this.dirs) {
			this.dirs?.destroy();
			this.dirs = storageFrom(d, dirs(), 'steer.dirs');
			this.uploaded = key;
		}
		const specsKey = JSON.stringify(specs.map((s) => [s.mode, s.feature, s.value]));
		if (specsKey === this.uploadedSpecs && this.specs) return;
		const raw = new ArrayBuffer(Math.max(16, specs.length * 16));
		const u = new Uint32Array(raw);
		const f = new Float32Array(raw);
		specs.forEach((s, j) => {
			u[4 * j] = s.mode === 'clamp' ? 1 : 0;
			u[4 * j + 1] = s.feature;
			f[4 * j + 2] = s.value;
		});
		if (!this.specs || this.specs.size < raw.byteLength) {
			this.specs?.destroy();
			this.specs = createStorage(d, raw.byteLength, 'steer.specs');
		}
		d.queue.writeBuffer(this.specs, 0, raw);
		this.uploadedSpecs = specsKey;
	}

	/**
	 * resid: [tokens, dIn] (ORT's buffer); dirs(): [rows, dIn], computed only when `key` changed;
	 * acts: the encoder's activations [tokens, dSae] (any buffer when nothing is clamped).
	 */
	apply(
		resid: GPUBuffer,
		tokens: number,
		dIn: number,
		dirs: () => Float32Array,
		specs: SteerRow[],
		key: string,
		acts: GPUBuffer,
		dSae: number,
		skipPosition: number
	) {
		if (!specs.length) return;
		this.upload(dirs, specs, key);
		const d = this.device;
		const u = uniformBuffer(d, [tokens, dIn, specs.length, dSae, skipPosition < 0 ? 0xffffffff : skipPosition, 0, 0, 0]);
		const enc = d.createCommandEncoder({ label: 'steer' });
		const pass = enc.beginComputePass();
		pass.setPipeline(this.pipeline);
		pass.setBindGroup(
			0,
			d.createBindGroup({
				layout: this.pipeline.getBindGroupLayout(0),
				entries: [
					{ buffer: resid, size: tokens * dIn * 4 },
					{ buffer: this.dirs! },
					{ buffer: this.specs! },
					{ buffer: acts },
					{ buffer: u }
				].map((resource, binding) => ({ binding, resource }))
			})
		);
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

/**
 * Applies steering to the residual buffer at a hook, in place, between two segments
 * (shaders/steer.wgsl): rows of directions, each applied by its method (add, clamp to a target
 * activation, orthogonal decomposition, projection cap) over the rows of this forward its scope
 * covers, one after the other. For clamps the encoder runs first. The directions are SAE decoder
 * rows or saved steering vectors. Reference: ../steer/spec.ts steerRowsReference.
 */
import shader from '../../../../shaders/steer.wgsl?raw';
import { computePipeline, createStorage, storageFrom, uniformBuffer } from './buffers';
import { withWorkgroupReduce } from './wgsl-headers';
import type { SteerMode, SteerRow } from '../steer/spec';

export type { SteerRow } from '../steer/spec';

const modeCode: Record<SteerMode, number> = { add: 0, clamp: 1, orthogonal: 2, cap: 3 };
const NO_ROW = 0xffffffff;

export class SteerKernel {
	private dirs: GPUBuffer | null = null;
	private specs: GPUBuffer | null = null;
	private lists: GPUBuffer | null = null;
	private uploaded: string = '';
	private uploadedSpecs: string = '';

	private constructor(
		private device: GPUDevice,
		private pipeline: GPUComputePipeline
	) {}

	static async create(device: GPUDevice) {
		return new SteerKernel(device, await computePipeline(device, withWorkgroupReduce(shader), 'steer'));
	}

	/**
	 * Uploads the directions when `key` changed, and the specs (method, feature, value, rows)
	 * whenever they differ from the last ones: a strength is not part of what the caller keys its
	 * directions by, and a slider that moved must act (a contrast vector's strength was once ignored
	 * until reload); the rows change between the prefill and the decode steps.
	 */
	private upload(dirs: () => Float32Array, specs: SteerRow[], key: string) {
		const d = this.device;
		if (key !== this.uploaded || !this.dirs) {
			this.dirs?.destroy();
			this.dirs = storageFrom(d, dirs(), 'steer.dirs');
			this.uploaded = key;
		}
		const specsKey = JSON.stringify(specs.map((s) => [s.mode, s.feature, s.value, s.rows ?? null]));
		if (specsKey === this.uploadedSpecs && this.specs && this.lists) return;
		const raw = new ArrayBuffer(Math.max(32, specs.length * 32));
		const u = new Uint32Array(raw);
		const f = new Float32Array(raw);
		const lists: number[] = [];
		specs.forEach((s, j) => {
			const w = s.rows ?? { lo: 0, hi: NO_ROW, list: [] };
			u[8 * j] = modeCode[s.mode];
			u[8 * j + 1] = s.feature;
			f[8 * j + 2] = s.value;
			u[8 * j + 3] = w.lo;
			u[8 * j + 4] = Math.min(w.hi, NO_ROW);
			u[8 * j + 5] = lists.length;
			u[8 * j + 6] = w.list.length;
			lists.push(...w.list);
		});
		if (!this.specs || this.specs.size < raw.byteLength) {
			this.specs?.destroy();
			this.specs = createStorage(d, raw.byteLength, 'steer.specs');
		}
		d.queue.writeBuffer(this.specs, 0, raw);
		const listData = Uint32Array.from(lists.length ? lists : [0]);
		if (!this.lists || this.lists.size < listData.byteLength) {
			this.lists?.destroy();
			this.lists = createStorage(d, listData.byteLength, 'steer.lists');
		}
		d.queue.writeBuffer(this.lists, 0, listData);
		this.uploadedSpecs = specsKey;
	}

	/**
	 * resid: [tokens, dIn] (ORT's buffer); dirs(): [rows, dIn], computed only when `key` changed;
	 * acts: the encoder's activations [tokens, dSae] (any buffer when nothing is clamped);
	 * skipPosition: a row no entry touches (BOS), or -1.
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
		const u = uniformBuffer(d, [tokens, dIn, specs.length, dSae, skipPosition < 0 ? NO_ROW : skipPosition, 0, 0, 0]);
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
					{ buffer: u },
					{ buffer: this.lists! }
				].map((resource, binding) => ({ binding, resource }))
			})
		);
		pass.dispatchWorkgroups(tokens);
		pass.end();
		d.queue.submit([enc.finish()]);
		d.queue.onSubmittedWorkDone().then(() => u.destroy());
	}

	destroy() {
		this.dirs?.destroy();
		this.specs?.destroy();
		this.lists?.destroy();
	}
}

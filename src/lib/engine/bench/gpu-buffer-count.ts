/**
 * Counts GPU buffers for the no-leaks bench (leaks.ts): while installed, every `createBuffer` on
 * any GPUDevice of this realm (onnxruntime-web's own buffers, weights, KV cache, its pool, and
 * Loupe's kernels' buffers alike) and every `GPUBuffer.destroy` are counted, with their bytes.
 * A buffer whose device is destroyed is freed with it (ORT destroys its device with its last
 * session), and one dropped without `destroy` is freed only when the garbage collector gets to it:
 * both are counted apart, so `live` is what created − destroyed leaves on a device still alive.
 * Installed for the bench only, and taken out after it, so the app's own path is never wrapped.
 */

/** What the counter has seen since it was installed. */
export interface BufferCounts {
	created: number;
	destroyed: number;
	/** Freed because their device was destroyed (never `destroy`ed themselves). */
	freedWithDevice: number;
	/** Dropped without `destroy` and since garbage-collected (the GPU memory waited for the collector). */
	collected: number;
	/** created − destroyed − freed with their device − collected: buffers that still hold GPU memory (garbage ones too, until collected). */
	live: number;
	liveBytes: number;
	/** The live buffers by label (ORT labels none; Loupe's kernels label theirs), the largest counts first. */
	liveByLabel: Record<string, number>;
}

interface Rec {
	size: number;
	label: string;
	device: DeviceRec;
	alive: boolean;
}
interface DeviceRec {
	alive: boolean;
	live: Set<Rec>;
}

export class GpuBufferCounter {
	private devices = new WeakMap<GPUDevice, DeviceRec>();
	private records = new WeakMap<GPUBuffer, Rec>();
	private allDevices = new Set<DeviceRec>();
	private counts = { created: 0, destroyed: 0, freedWithDevice: 0, collected: 0 };
	private restore: (() => void) | null = null;
	// A buffer dropped without destroy: its record is still alive in its device's set, which holds
	// the record only (never the buffer), so the collector can take the buffer.
	private finalizer = new FinalizationRegistry<Rec>((r) => {
		if (!r.alive) return;
		r.alive = false;
		r.device.live.delete(r);
		if (r.device.alive) this.counts.collected++;
	});

	/** Wraps the prototypes; throws where this realm has no WebGPU. */
	install() {
		if (this.restore) return;
		if (typeof GPUDevice === 'undefined' || typeof GPUBuffer === 'undefined')
			throw new Error('This realm has no WebGPU (GPUDevice is undefined): there are no GPU buffers to count.');
		const dev = GPUDevice.prototype;
		const buf = GPUBuffer.prototype;
		const { createBuffer } = dev;
		const destroyDevice = dev.destroy;
		const destroyBuffer = buf.destroy;
		// The wrappers' own `this` is the device or buffer: the counter's methods are bound first.
		const onCreate = this.onCreate.bind(this);
		const onDestroy = this.onDestroy.bind(this);
		const onDeviceDestroyed = this.onDeviceDestroyed.bind(this);
		dev.createBuffer = function (this: GPUDevice, desc: GPUBufferDescriptor) {
			const b = createBuffer.call(this, desc);
			onCreate(this, b, desc);
			return b;
		};
		buf.destroy = function (this: GPUBuffer) {
			onDestroy(this);
			return destroyBuffer.call(this);
		};
		dev.destroy = function (this: GPUDevice) {
			onDeviceDestroyed(this);
			return destroyDevice.call(this);
		};
		this.restore = () => {
			dev.createBuffer = createBuffer;
			dev.destroy = destroyDevice;
			buf.destroy = destroyBuffer;
		};
	}

	uninstall() {
		this.restore?.();
		this.restore = null;
	}

	private deviceRec(d: GPUDevice): DeviceRec {
		let r = this.devices.get(d);
		if (!r) {
			r = { alive: true, live: new Set() };
			this.devices.set(d, r);
			this.allDevices.add(r);
			// A lost device (destroyed or reset) frees its buffers too.
			d.lost.then(() => this.freeDevice(r!));
		}
		return r;
	}

	private onCreate(d: GPUDevice, b: GPUBuffer, desc: GPUBufferDescriptor) {
		const device = this.deviceRec(d);
		const rec: Rec = { size: desc.size, label: desc.label || '(no label: onnxruntime)', device, alive: device.alive };
		this.counts.created++;
		this.records.set(b, rec);
		if (!rec.alive) return;
		device.live.add(rec);
		this.finalizer.register(b, rec, rec);
	}

	private onDestroy(b: GPUBuffer) {
		const rec = this.records.get(b);
		if (!rec?.alive) return; // created before the counter, or destroyed twice (allowed by WebGPU)
		rec.alive = false;
		rec.device.live.delete(rec);
		this.finalizer.unregister(rec);
		this.counts.destroyed++;
	}

	private onDeviceDestroyed(d: GPUDevice) {
		const r = this.devices.get(d);
		if (r) this.freeDevice(r);
	}

	private freeDevice(r: DeviceRec) {
		if (!r.alive) return;
		r.alive = false;
		for (const rec of r.live) rec.alive = false;
		this.counts.freedWithDevice += r.live.size;
		r.live.clear();
		this.allDevices.delete(r);
	}

	snapshot(): BufferCounts {
		let live = 0;
		let liveBytes = 0;
		const byLabel = new Map<string, number>();
		for (const d of this.allDevices)
			for (const r of d.live) {
				live++;
				liveBytes += r.size;
				byLabel.set(r.label, (byLabel.get(r.label) ?? 0) + 1);
			}
		return {
			...this.counts,
			live,
			liveBytes,
			liveByLabel: Object.fromEntries([...byLabel].sort((a, b) => b[1] - a[1]))
		};
	}
}

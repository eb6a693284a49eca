/**
 * Logits post-processing (frequency penalty, temperature, softmax) for rows of logits that are
 * already on the GPU (ORT's output buffer): one row, or one per sequence of a batch in one dispatch. `logitsProcessReference` is the same math in plain
 * TypeScript: tests compare the two, and it serves the wasm fallback when there is no WebGPU.
 */
import shader from '../../../../shaders/logits_process.wgsl?raw';
import { withWorkgroupReduce } from './wgsl-headers';
import { computePipeline, createStorage } from './buffers';

export interface LogitsParams {
	temperature: number; // 0 = greedy (no scaling)
	freqPenalty: number; // logit -= freqPenalty * count(token)
}

export interface ProcessedLogits {
	logits: Float32Array; // after penalty and temperature
	probs: Float32Array; // softmax of the above
}

const invTemperature = (t: number) => (t > 0 ? Math.fround(1 / t) : 1);

export function logitsProcessReference(row: Float32Array, counts: Uint32Array, p: LogitsParams): ProcessedLogits {
	const V = row.length;
	const inv = invTemperature(p.temperature);
	const logits = new Float32Array(V);
	let max = -Infinity;
	for (let i = 0; i < V; i++) {
		logits[i] = (row[i] - p.freqPenalty * counts[i]) * inv;
		if (logits[i] > max) max = logits[i];
	}
	const probs = new Float32Array(V);
	let sum = 0;
	for (let i = 0; i < V; i++) sum += probs[i] = Math.exp(logits[i] - max);
	for (let i = 0; i < V; i++) probs[i] /= sum;
	return { logits, probs };
}

export class LogitsProcessor {
	private counts!: GPUBuffer;
	private out!: GPUBuffer;
	private params: GPUBuffer;
	/** Rows `counts` and `out` have room for (grown when a larger batch asks). */
	private capacity = 0;

	private constructor(
		private device: GPUDevice,
		private pipeline: GPUComputePipeline,
		readonly vocab: number
	) {
		this.params = device.createBuffer({
			label: 'logits_process.params',
			size: 32,
			usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST
		});
		this.grow(1);
	}

	static async create(device: GPUDevice, vocab: number) {
		return new LogitsProcessor(device, await computePipeline(device, withWorkgroupReduce(shader), 'logits_process'), vocab);
	}

	private grow(rows: number) {
		this.counts?.destroy();
		this.out?.destroy();
		this.capacity = rows;
		this.counts = createStorage(this.device, rows * this.vocab * 4, 'logits_process.counts');
		this.out = createStorage(this.device, rows * 2 * this.vocab * 4, 'logits_process.out');
	}

	/**
	 * `logits` holds `rows × vocab` floats (it may be a larger, size-bucketed buffer: only
	 * `rows × vocab × 4` bytes are bound); processes row `row`.
	 */
	async run(logits: GPUBuffer, rows: number, row: number, counts: Uint32Array, p: LogitsParams): Promise<ProcessedLogits> {
		return (await this.runRows(logits, rows, row, 0, [counts], p))[0];
	}

	/**
	 * Rows `first`, `first + stride`, … of `rows × vocab` logits, one per entry of `counts` (each
	 * row's own token counts), in one dispatch and one read-back: a batch's sequences (side by side)
	 * cost what one does. The compute pass and the copy to the read-back buffer go in one submit.
	 */
	async runRows(
		logits: GPUBuffer,
		rows: number,
		first: number,
		stride: number,
		counts: Uint32Array[],
		p: LogitsParams
	): Promise<ProcessedLogits[]> {
		const { device, vocab: V } = this;
		const n = counts.length;
		if (n > this.capacity) this.grow(n);
		counts.forEach((c, r) => device.queue.writeBuffer(this.counts, r * V * 4, c as Uint32Array<ArrayBuffer>));
		const u = new ArrayBuffer(32);
		new Uint32Array(u, 0, 3).set([V, first * V, stride * V]);
		new Float32Array(u, 12, 2).set([invTemperature(p.temperature), p.freqPenalty]);
		device.queue.writeBuffer(this.params, 0, u);
		const bind = device.createBindGroup({
			layout: this.pipeline.getBindGroupLayout(0),
			entries: [
				{ binding: 0, resource: { buffer: logits, offset: 0, size: rows * V * 4 } },
				{ binding: 1, resource: { buffer: this.counts } },
				{ binding: 2, resource: { buffer: this.out } },
				{ binding: 3, resource: { buffer: this.params } }
			]
		});
		const size = n * 2 * V * 4;
		// A read-back buffer per call: two calls in flight never share a mapping.
		const staging = device.createBuffer({ label: 'logits_process.read', size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
		const enc = device.createCommandEncoder({ label: 'logits_process' });
		const pass = enc.beginComputePass();
		pass.setPipeline(this.pipeline);
		pass.setBindGroup(0, bind);
		pass.dispatchWorkgroups(n);
		pass.end();
		enc.copyBufferToBuffer(this.out, 0, staging, 0, size);
		device.queue.submit([enc.finish()]);
		try {
			await staging.mapAsync(GPUMapMode.READ);
			const all = new Float32Array(staging.getMappedRange().slice(0));
			return counts.map((_, r) => ({
				logits: all.subarray(r * 2 * V, r * 2 * V + V),
				probs: all.subarray(r * 2 * V + V, (r + 1) * 2 * V)
			}));
		} finally {
			staging.destroy();
		}
	}

	destroy() {
		this.counts.destroy();
		this.out.destroy();
		this.params.destroy();
	}
}

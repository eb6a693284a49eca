/**
 * Logits post-processing (frequency penalty, temperature, softmax) for one row of logits that is
 * already on the GPU (ORT's output buffer). `logitsProcessReference` is the same math in plain
 * TypeScript: tests compare the two, and it serves the wasm fallback when there is no WebGPU.
 */
import shader from '../../../../shaders/logits_process.wgsl?raw';
import { withWorkgroupReduce } from './wgsl-headers';
import { computePipeline, createStorage, readBuffer } from './buffers';

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
	private counts: GPUBuffer;
	private out: GPUBuffer;
	private params: GPUBuffer;

	private constructor(
		private device: GPUDevice,
		private pipeline: GPUComputePipeline,
		readonly vocab: number
	) {
		this.counts = createStorage(device, vocab * 4, 'logits_process.counts');
		this.out = createStorage(device, 2 * vocab * 4, 'logits_process.out');
		this.params = device.createBuffer({
			label: 'logits_process.params',
			size: 16,
			usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST
		});
	}

	static async create(device: GPUDevice, vocab: number) {
		return new LogitsProcessor(device, await computePipeline(device, withWorkgroupReduce(shader), 'logits_process'), vocab);
	}

	/**
	 * `logits` holds `rows × vocab` floats (it may be a larger, size-bucketed buffer: only
	 * `rows × vocab × 4` bytes are bound); processes row `row`.
	 */
	async run(logits: GPUBuffer, rows: number, row: number, counts: Uint32Array, p: LogitsParams): Promise<ProcessedLogits> {
		const { device, vocab } = this;
		device.queue.writeBuffer(this.counts, 0, counts as Uint32Array<ArrayBuffer>);
		const u = new ArrayBuffer(16);
		new Uint32Array(u, 0, 2).set([vocab, row * vocab]);
		new Float32Array(u, 8, 2).set([invTemperature(p.temperature), p.freqPenalty]);
		device.queue.writeBuffer(this.params, 0, u);
		const bind = device.createBindGroup({
			layout: this.pipeline.getBindGroupLayout(0),
			entries: [
				{ binding: 0, resource: { buffer: logits, offset: 0, size: rows * vocab * 4 } },
				{ binding: 1, resource: { buffer: this.counts } },
				{ binding: 2, resource: { buffer: this.out } },
				{ binding: 3, resource: { buffer: this.params } }
			]
		});
		const enc = device.createCommandEncoder({ label: 'logits_process' });
		const pass = enc.beginComputePass();
		pass.setPipeline(this.pipeline);
		pass.setBindGroup(0, bind);
		pass.dispatchWorkgroups(1);
		pass.end();
		device.queue.submit([enc.finish()]);
		const all = new Float32Array(await readBuffer(device, this.out, 2 * vocab * 4));
		return { logits: all.subarray(0, vocab), probs: all.subarray(vocab) };
	}

	destroy() {
		this.counts.destroy();
		this.out.destroy();
		this.params.destroy();
	}
}

/** Small helpers for GPU buffers shared by every kernel runner. */

/** Copies `size` bytes of `src` (which need not be mappable, e.g. an ORT output) to the CPU. */
export async function readBuffer(device: GPUDevice, src: GPUBuffer, size: number, offset = 0): Promise<ArrayBuffer> {
	const staging = device.createBuffer({ size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
	const enc = device.createCommandEncoder();
	enc.copyBufferToBuffer(src, offset, staging, 0, size);
	device.queue.submit([enc.finish()]);
	await staging.mapAsync(GPUMapMode.READ);
	const copy = staging.getMappedRange().slice(0);
	staging.destroy();
	return copy;
}

export function createStorage(device: GPUDevice, size: number, label: string, extraUsage = 0): GPUBuffer {
	return device.createBuffer({
		label,
		size: Math.max(16, Math.ceil(size / 4) * 4),
		usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC | extraUsage
	});
}

/** A storage buffer holding a copy of `data`. */
export function storageFrom(device: GPUDevice, data: Float32Array, label: string): GPUBuffer {
	const buf = createStorage(device, data.byteLength, label);
	device.queue.writeBuffer(buf, 0, data as Float32Array<ArrayBuffer>);
	return buf;
}

/** A kernel's uniform Params: u32 words, or { f32 } for float fields; padded to 16 bytes. */
/** Uniform words (u32, or {f32}) packed into 16-byte rows. */
export function packUniform(words: (number | { f32: number })[]): ArrayBuffer {
	const data = new ArrayBuffer(Math.max(16, Math.ceil(words.length / 4) * 16));
	const u = new Uint32Array(data);
	const f = new Float32Array(data);
	words.forEach((w, i) => (typeof w === 'number' ? (u[i] = w) : (f[i] = w.f32)));
	return data;
}

export function uniformBuffer(device: GPUDevice, words: (number | { f32: number })[]): GPUBuffer {
	const data = packUniform(words);
	const buf = device.createBuffer({ size: data.byteLength, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
	device.queue.writeBuffer(buf, 0, data);
	return buf;
}

/** Compiles a compute pipeline and surfaces WGSL compile errors with the shader's name. */
export async function computePipeline(device: GPUDevice, code: string, label: string, entryPoint = 'main'): Promise<GPUComputePipeline> {
	const module = device.createShaderModule({ label, code });
	const info = await module.getCompilationInfo();
	const errors = info.messages.filter((m) => m.type === 'error');
	if (errors.length) throw new Error(`${label}.wgsl: ${errors.map((m) => `${m.lineNum}:${m.linePos} ${m.message}`).join('; ')}`);
	return device.createComputePipelineAsync({ label: `${label}.${entryPoint}`, layout: 'auto', compute: { module, entryPoint } });
}

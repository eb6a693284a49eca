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

/** Compiles a compute pipeline and surfaces WGSL compile errors with the shader's name. */
export async function computePipeline(device: GPUDevice, code: string, label: string, entryPoint = 'main'): Promise<GPUComputePipeline> {
	const module = device.createShaderModule({ label, code });
	const info = await module.getCompilationInfo();
	const errors = info.messages.filter((m) => m.type === 'error');
	if (errors.length) throw new Error(`${label}.wgsl: ${errors.map((m) => `${m.lineNum}:${m.linePos} ${m.message}`).join('; ')}`);
	return device.createComputePipelineAsync({ label: `${label}.${entryPoint}`, layout: 'auto', compute: { module, entryPoint } });
}

/**
 * Loupe's GPUDevice: the one device onnxruntime runs the model on (handed to it as the WebGPU
 * execution provider's `device`) and Loupe's own kernels run on (sampling, SAEs, steering,
 * training, attribution), so they share buffers with the model.
 *
 * Why Loupe makes the device rather than taking onnxruntime's: onnxruntime-web (1.30) keeps every
 * buffer of a released WebGPU session while any other session on its context lives, and frees them
 * only when the context's last session goes; on a device it made itself it then destroys the
 * device too, and with it every buffer of Loupe's kernels. Switching models or re-cutting one
 * therefore had to keep a session alive across the switch, and leaked the old model's weights on
 * every switch (~180 buffers, 4.8 MB a switch on stories260K: the no-leaks bench). On a device Loupe
 * owns, the runner releases all its sessions before the next one is built (onnxruntime then frees
 * every buffer it made) and the device, and what Loupe keeps on it, stays.
 */

let current: Promise<GPUDevice> | null = null;

/**
 * The device, made on first use from the browser's default adapter with every feature and the
 * highest limits it offers (what onnxruntime asks for when it makes its own: shader-f16, subgroups,
 * the largest buffers and workgroup storage). A lost device is replaced on the next call.
 */
export function loupeGpuDevice(): Promise<GPUDevice> {
	if (!current) {
		const made = makeDevice();
		current = made;
		made.then(
			(device) =>
				device.lost.then(() => {
					if (current === made) current = null;
				}),
			() => {
				if (current === made) current = null;
			}
		);
	}
	return current;
}

/** The WebGPU execution provider on Loupe's device, for `InferenceSession.create`'s options. */
export async function webgpuProvider(): Promise<{ name: 'webgpu'; device: GPUDevice }> {
	return { name: 'webgpu', device: await loupeGpuDevice() };
}

async function makeDevice(): Promise<GPUDevice> {
	const adapter = await navigator.gpu?.requestAdapter();
	if (!adapter) throw new Error('no WebGPU adapter is available');
	const requiredLimits: Record<string, number> = {};
	// GPUSupportedLimits' values are getters on its prototype: walk those, not own keys.
	for (const key in adapter.limits) {
		const v = (adapter.limits as unknown as Record<string, unknown>)[key];
		if (typeof v === 'number') requiredLimits[key] = v;
	}
	return adapter.requestDevice({
		label: 'loupe',
		requiredFeatures: [...adapter.features] as GPUFeatureName[],
		requiredLimits
	});
}

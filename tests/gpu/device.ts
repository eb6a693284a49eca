// The WebGPU device of the Chromium page the test runs in (SwiftShader here).
export async function testDevice(): Promise<GPUDevice> {
	if (!navigator.gpu) throw new Error('navigator.gpu is missing: launch Chromium with --enable-unsafe-webgpu');
	const adapter = await navigator.gpu.requestAdapter();
	if (!adapter) throw new Error('no WebGPU adapter');
	return adapter.requestDevice();
}

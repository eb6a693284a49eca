// The WebGPU device of the Chromium page the test runs in (SwiftShader here).
export async function testDevice(): Promise<GPUDevice> {
	if (!navigator.gpu) throw new Error('navigator.gpu is missing: launch Chromium with --enable-unsafe-webgpu');
	const adapter = await navigator.gpu.requestAdapter();
	if (!adapter) throw new Error('no WebGPU adapter');
	return adapter.requestDevice();
}

/** A seeded uniform generator in [-1, 1), so kernel tests use the same inputs every run. */
export function rng(seed: number): () => number {
	let s = seed >>> 0;
	return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
}

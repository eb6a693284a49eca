import type { SaeConfig } from '../../src/lib/engine/sae/config';

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

/** An SAE config with no preprocessing (ReLU at blocks.0.hook_resid_pre unless `over` says otherwise), for kernel tests. */
export function plainSaeConfig(dIn: number, dSae: number, over: Partial<SaeConfig> = {}): SaeConfig {
	return {
		architecture: 'relu',
		dIn,
		dSae,
		hookName: 'blocks.0.hook_resid_pre',
		applyBDecToInput: false,
		normalizeActivations: 'none',
		centerInput: false,
		format: 'test',
		dtype: 'F32',
		name: 'test',
		...over
	};
}

/**
 * Where the model can run in this browser: WebGPU (which adapter, whether it has shader-f16) or the
 * wasm fallback and why, and the thread count; and a small session that keeps ORT's WebGPU device
 * alive while the model's own sessions are swapped.
 */
import type * as Ort from 'onnxruntime-web';
import type { Backend } from './runner';
import { GraphBuilder } from './onnx/graph-builder';

export interface EngineStatus {
	backend: Backend;
	adapter: string; // e.g. "SwiftShader (google)" or "no WebGPU"
	/** Why the engine runs on wasm instead of WebGPU, in words for people. */
	fallbackReason?: string;
	crossOriginIsolated: boolean;
	threads: number;
	/** The adapter can run fp16 shaders (fp16 and q4f16 model variants need it). */
	shaderF16: boolean;
}

/** Asks the browser once, and sets onnxruntime-web's wasm threads and log level to match. */
export async function detectBackend(ort: typeof Ort): Promise<EngineStatus> {
	const threads = self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
	ort.env.wasm.numThreads = threads;
	ort.env.logLevel = 'error';
	let backend: Backend = 'wasm';
	let adapter = 'no WebGPU';
	let fallbackReason: string | undefined;
	let shaderF16 = false;
	if (!('gpu' in navigator) || !navigator.gpu) {
		fallbackReason =
			'This browser has no WebGPU (navigator.gpu is missing), so the model runs on the CPU (WebAssembly), more slowly. Chrome, Edge and recent Safari and Firefox have WebGPU.';
	} else {
		const a = await navigator.gpu.requestAdapter().catch(() => null);
		if (!a)
			fallbackReason =
				'WebGPU is present but no GPU adapter is available (it may be disabled or blocklisted), so the model runs on the CPU (WebAssembly), more slowly.';
		else {
			backend = 'webgpu';
			shaderF16 = a.features.has('shader-f16');
			const i = a.info;
			adapter = [i.description || i.architecture || i.device, i.vendor && `(${i.vendor})`].filter(Boolean).join(' ') || 'WebGPU adapter';
		}
	}
	return { backend, adapter, fallbackReason, crossOriginIsolated: self.crossOriginIsolated, threads, shaderF16 };
}

/**
 * A one-node WebGPU session (Identity on one float): while it lives ORT keeps its WebGPU context,
 * and with it the GPUDevice, whatever other sessions are released.
 */
export async function holdGpuContext(ort: typeof Ort): Promise<{ release(): Promise<void> }> {
	const g = new GraphBuilder('loupe-device-hold');
	g.input('x', 'float32', [1]);
	g.node('Identity', ['x'], ['y']);
	g.output('y', 'float32', [1]);
	const session = await ort.InferenceSession.create(g.toBytes(), { executionProviders: ['webgpu'] });
	return { release: () => session.release() };
}

// The UI's handle on the engine worker: a typed comlink proxy.
import * as Comlink from 'comlink';
import type { Engine } from './index';
import type { BackendPreference } from './model/backend';

export type EngineProxy = Comlink.Remote<Engine>;

export function startEngine(): { engine: EngineProxy; terminate: () => void } {
	const worker = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module', name: 'loupe-engine' });
	const engine = Comlink.wrap<Engine>(worker);
	// Where the model runs (?backend=auto|webgpu|wasm, Settings): posted before the page's first
	// call, so the worker has it when `init` chooses. The trainer and bench pages need WebGPU wherever an adapter exists.
	const q = new URLSearchParams(location.search);
	engine.setBackendPreference({
		preference: (q.get('backend') ?? 'auto') as BackendPreference,
		needsWebGpu: /\/(train|bench)\/?$/.test(location.pathname)
	});
	return { engine, terminate: () => worker.terminate() };
}

export const proxy = Comlink.proxy;

// The UI's handle on the engine worker: a typed comlink proxy.
import * as Comlink from 'comlink';
import type { Engine } from './index';

export type EngineProxy = Comlink.Remote<Engine>;

export function startEngine(): { engine: EngineProxy; terminate: () => void } {
	const worker = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module', name: 'loupe-engine' });
	const engine = Comlink.wrap<Engine>(worker);
	return { engine, terminate: () => worker.terminate() };
}

export const proxy = Comlink.proxy;

// The engine's modules run in a Web Worker: they read `self` and `navigator` (onnxruntime-web asks it
// for hardwareConcurrency). Importing this file first gives Node both, and runs onnxruntime's wasm on
// one thread, quietly, as the unit tests of the engine want it.
import * as ort from 'onnxruntime-web/webgpu';

const g = globalThis as unknown as { self?: unknown; navigator?: unknown };
g.self ??= globalThis;
g.navigator ??= { hardwareConcurrency: 1 };
ort.env.wasm.numThreads = 1;
ort.env.logLevel = 'error';

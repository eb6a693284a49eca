// Keeps onnxruntime-web's wasm on V8's baseline compiler (Liftoff) in the unit tests. By default V8
// tiers hot wasm functions up to TurboFan in its background threads; onnxruntime's module is 14-28 MB,
// and on the 2 cores here that tier-up cost more CPU than the tiny models here ever win back, and
// everything else V8 compiles in those threads waited behind it (the TS reference forwards' JS,
// Node's fetch parser: a first fetch after opening stories260K stalled 15 s). Measured per file:
// explorer-sae-files 26 s → 5 s (CPU 24 s → 7 s), weights-on-demand 24 s → 6 s; the files on plain
// onnxruntime-web use 10-30 % less CPU. Liftoff and TurboFan compute the same wasm (its arithmetic is
// deterministic), so no result changes. Import this file first, before anything opens an onnxruntime
// session (the flag is read when a wasm module is compiled). Child processes get it as a node flag
// (`tsx --liftoff-only cli.ts …`): `npm run hooks -- …/llama_modelbuilder_fp16/model.onnx --verify`
// took 4.3-7.3 s (CPU 5.5 s) without it, 1.7-2.0 s (CPU 1.9 s) with it.
// vite.config.ts could give it to the whole unit project instead (`execArgv: ['--liftoff-only']`).
import { setFlagsFromString } from 'node:v8';

/** The node flag, for the CLIs the tests run as child processes. */
export const LIFTOFF_ONLY = '--liftoff-only';

setFlagsFromString(LIFTOFF_ONLY);

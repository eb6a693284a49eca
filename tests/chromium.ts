// How every browser test launches Chromium: Debian's build (Playwright cannot download its own
// here), headless, with WebGPU on its bundled SwiftShader and no background network.
export const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export const chromiumArgs = [
	'--enable-unsafe-webgpu',
	'--use-webgpu-adapter=swiftshader',
	'--no-sandbox',
	'--disable-background-networking',
	'--disable-component-update',
	'--disable-sync',
	'--disable-quic',
	'--no-first-run'
];

/**
 * The tests' Chromium: the same, with V8's wasm kept on its baseline compiler (Liftoff). Left to
 * itself V8 recompiles hot functions of onnxruntime's 27 MB wasm with TurboFan in background
 * threads, which on a 2-core runner take the CPU from SwiftShader and the page; the tests' models are
 * tiny, so that never pays back (measured: playground, features, greedy and steering specs 108 s →
 * 81 s). Results do not change (wasm arithmetic is deterministic). Benchmarks and make-defaults keep
 * V8's defaults, as a visitor's browser has them.
 */
export const testChromiumArgs = [...chromiumArgs, '--js-flags=--liftoff-only'];

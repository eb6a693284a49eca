import { sveltekit } from '@sveltejs/kit/vite';
import { playwright } from '@vitest/browser-playwright';
import { defineConfig } from 'vitest/config';
import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';
import { testChromiumArgs, chromiumPath } from './tests/chromium.ts';
import { fixturesDir, stories260KDir } from './tests/fixtures.ts';

export default defineConfig({
	plugins: [sveltekit()],
	optimizeDeps: { exclude: ['onnxruntime-web'] },
	worker: { format: 'es' },
	build: { target: 'es2022', chunkSizeWarningLimit: 2000 },
	test: {
		testTimeout: 120_000,
		projects: [
			// Plain TypeScript: model math, formats, the ONNX builder run by onnxruntime-web (wasm) in Node.
			{
				resolve: { alias: { $lib: fileURLToPath(new URL('./src/lib', import.meta.url)) } },
				// --liftoff-only: onnxruntime's 14-28 MB wasm stays on V8's baseline compiler; its TurboFan
				// tier-up cost more CPU than these tiny models win back (tests/unit/liftoff-only.ts measures why).
				test: {
					name: 'unit',
					include: ['tests/unit/**/*.test.ts'],
					environment: 'node',
					testTimeout: 120_000,
					execArgv: ['--liftoff-only']
				}
			},
			// WGSL kernels on a real WebGPU device in headless Chromium, against their TS references.
			{
				// TF.js (the attribution test's autograd peer) is pre-bundled up front: discovered mid-run, Vite
				// reloads the page once and the test that imported it fails.
				optimizeDeps: {
					exclude: ['onnxruntime-web'],
					include: ['idb', '@tensorflow/tfjs-core', '@tensorflow/tfjs-core/dist/register_all_gradients', '@tensorflow/tfjs-backend-webgpu']
				},
				server: { fs: { allow: [fileURLToPath(new URL('.', import.meta.url)), fixturesDir] } },
				test: {
					name: 'gpu',
					testTimeout: 120_000,
					provide: {
						stories260KDir,
						onnxExportsDir: resolve(fixturesDir, 'onnx-exports'),
						fullSynthetic: process.env.LOUPE_FULL_SYNTHETIC === '1',
						fullBench: process.env.LOUPE_BENCH === '1'
					},
					include: ['tests/gpu/**/*.test.ts'],
					browser: {
						enabled: true,
						headless: true,
						provider: playwright({ launchOptions: { executablePath: chromiumPath, args: testChromiumArgs } }),
						instances: [{ browser: 'chromium' }]
					}
				}
			}
		]
	}
});

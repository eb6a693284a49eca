import { sveltekit } from '@sveltejs/kit/vite';
import { defineConfig } from 'vitest/config';

export default defineConfig({
	plugins: [sveltekit()],
	// WGSL files are imported as text (`import src from '../../shaders/x.wgsl?raw'`).
	assetsInclude: [],
	optimizeDeps: { exclude: ['onnxruntime-web'] },
	worker: { format: 'es' },
	build: { target: 'es2022', chunkSizeWarningLimit: 2000 },
	test: {
		include: ['tests/unit/**/*.test.ts'],
		environment: 'node',
		testTimeout: 60_000
	}
});

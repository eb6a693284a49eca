import { defineConfig } from '@playwright/test';
import { testChromiumArgs, chromiumPath } from './tests/chromium.ts';

const port = Number(process.env.LOUPE_TEST_PORT ?? 4173);

export default defineConfig({
	testDir: 'tests/e2e',
	// SwiftShader runs WebGPU on the CPU: generous timeouts, one page at a time on two cores.
	timeout: 240_000,
	expect: { timeout: 60_000 },
	workers: 1,
	fullyParallel: false,
	reporter: [['list']],
	use: {
		baseURL: `http://localhost:${port}`,
		browserName: 'chromium',
		launchOptions: { executablePath: chromiumPath, args: testChromiumArgs },
		// The service worker precaches the whole build (about 32 MB) in every new context: only the
		// specs that test it (offline*, the request log) allow it, with test.use({ serviceWorkers: 'allow' }).
		serviceWorkers: 'block',
		screenshot: 'only-on-failure',
		trace: 'off'
	},
	webServer: {
		command: `node tests/serve.mjs --port ${port}`,
		url: `http://localhost:${port}/`,
		reuseExistingServer: !process.env.CI,
		stdout: 'ignore'
	}
});

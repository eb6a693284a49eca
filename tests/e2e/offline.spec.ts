import { expect, test, shot } from './app';
import { generateText, openApp, waitForModel } from './app';

// This spec needs the service worker (playwright.config.ts blocks it elsewhere).
test.use({ serviceWorkers: 'allow' });

test('after one visit the page opens offline and the cached model writes again', async ({ page, context }) => {
	await openApp(page, { temperature: 0, max_tokens: 40, prompt: 'Tim saw a cat' });
	await waitForModel(page);
	// The service worker has precached the shell (including onnxruntime-web's wasm) once it is active.
	expect(await page.evaluate(async () => !!(await navigator.serviceWorker.ready).active)).toBe(true);
	const online = await generateText(page);
	expect(online.length).toBeGreaterThan(20);

	await context.setOffline(true);
	await page.reload();
	await waitForModel(page);
	await expect(page.getByTestId('prompt')).toHaveValue('Tim saw a cat'); // the view came back from the URL
	const offline = await generateText(page);
	expect(offline).toBe(online);
	await shot(page, 'tests/screenshots/offline.png', true);
	await context.setOffline(false);
});

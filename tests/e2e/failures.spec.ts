// Bad input gets a specific message, and the page and the cache stay usable.
import { expect, test, type Page, shot } from './app';
import { generateText, hub, openApp, waitForModel } from './app';

async function expectBanner(page: Page, code: string, text: RegExp) {
	const banner = page
		.getByTestId('error-banner')
		.filter({ has: page.locator(`[data-code="${code}"]`) })
		.or(page.locator(`[data-testid="error-banner"][data-code="${code}"]`));
	await expect(banner.first()).toBeVisible({ timeout: 90_000 });
	await expect(banner.first()).toContainText(text);
}

async function switchHub(page: Page, to: string) {
	await page.getByTestId('open-settings').click();
	await page.getByTestId('hub-url').fill(to);
	await page.getByRole('button', { name: 'Use this hub' }).click();
}

test('a hub without the model: 404 named, then a good hub works in the same page', async ({ page }) => {
	await page.goto(`/?hub=${encodeURIComponent(hub('hub/no-such-mirror'))}`);
	await expectBanner(page, 'not-found', /stories260K\.bin was not found .*HTTP 404/);
	await shot(page, 'tests/screenshots/error-404.png', true);
	await switchHub(page, hub());
	await waitForModel(page);
	await expect(page).toHaveURL(/hub=http%3A%2F%2Flocalhost%3A\d+%2Fhub(&|$)/);
	await page.getByTestId('max-tokens').fill('10');
	expect((await generateText(page)).length).toBeGreaterThan(5);
});

test('an unreachable hub says so after retrying', async ({ page }) => {
	await page.goto(`/?model=stories15M&hub=${encodeURIComponent('http://127.0.0.1:9')}`);
	await expectBanner(page, 'hub-unreachable', /Could not reach http:\/\/127\.0\.0\.1:9/);
	await expect(page.getByTestId('retry-load')).toBeVisible();
});

test('a truncated file is named with its sizes and is not kept in the cache', async ({ page }) => {
	await openApp(page, { hub: hub('truncated-hub') });
	await expectBanner(page, 'truncated', /stories260K\.bin is truncated: it has 633,924 bytes.*needs 1,056,540/);
	await shot(page, 'tests/screenshots/error-truncated.png', true);
	await page.getByTestId('open-storage').click();
	await expect(page.getByTestId('storage-panel')).toContainText('No models are cached yet');
});

test('an HTML page instead of the checkpoint is recognised as not a checkpoint', async ({ page }) => {
	await openApp(page, { hub: hub('html-hub') });
	await expectBanner(page, 'not-a-checkpoint', /stories260K\.bin is not a llama2\.c checkpoint/);
});

test('a download that breaks off halfway resumes and the model loads', async ({ page, request }) => {
	await request.get('/__reset');
	await openApp(page, { hub: hub('flaky-hub'), temperature: 0, max_tokens: 12 });
	await waitForModel(page);
	expect((await generateText(page)).length).toBeGreaterThan(5);
});

test('a full disk: the model runs, and the page says it could not be saved', async ({ page, context }) => {
	const cdp = await context.newCDPSession(page);
	await page.goto('/');
	const origin = new URL(page.url()).origin;
	await cdp.send('Storage.overrideQuotaForOrigin', { origin, quotaSize: 200_000 });
	await page.evaluate(async () => {
		for (const k of await caches.keys()) await caches.delete(k);
	});
	await openApp(page, { temperature: 0, max_tokens: 10 });
	await waitForModel(page);
	await expectBanner(page, 'storage-full', /could not be saved for offline use: the browser's storage for this site is full/);
	await shot(page, 'tests/screenshots/error-storage-full.png', true);
	expect((await generateText(page)).length).toBeGreaterThan(5);
	await cdp.send('Storage.overrideQuotaForOrigin', { origin });
});

test('a lost GPU device is reported and the engine restarts with the cached model', async ({ page }) => {
	await openApp(page, { temperature: 0, max_tokens: 10, backend: 'webgpu' });
	await waitForModel(page);
	const worker = page.workers().find((w) => w.url().includes('worker'));
	expect(worker, 'the engine worker').toBeTruthy();
	await worker!.evaluate(async () => {
		const engine = (self as unknown as { loupeEngine: { gpuDevice(): Promise<GPUDevice> } }).loupeEngine;
		(await engine.gpuDevice()).destroy();
	});
	await expectBanner(page, 'gpu-lost', /The GPU device was lost/);
	await expect(page.getByTestId('generate')).toBeDisabled();
	await shot(page, 'tests/screenshots/error-gpu-lost.png', true);
	await page.getByTestId('restart-engine').click();
	await waitForModel(page);
	expect((await generateText(page)).length).toBeGreaterThan(5);
});

import { expect, test, shot } from './app';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fixturesDir, stories260KDir } from '../fixtures';
import { chromiumPath } from '../chromium';
import { generateText, hub, openApp, waitForModel } from './app';

const published = readFileSync(resolve(fixturesDir, 'stories260K.greedy256.txt'), 'utf8');

test('downloads show per-file progress, then the storage panel lists and deletes cached files', async ({ page }) => {
	await openApp(page, { hub: hub('slow-hub') });
	const progress = page.getByTestId('download-progress');
	await expect(progress).toBeVisible();
	await expect(progress.locator('[data-file="stories260K.bin"]')).toContainText(/\/ 1\.0 MB/);
	await shot(page, 'tests/screenshots/download-progress.png', true);
	await waitForModel(page);
	await page.getByTestId('open-storage').click();
	const rows = page.getByTestId('cached-file');
	await expect(rows).toHaveCount(2);
	await expect(page.getByTestId('storage-panel')).toContainText('stories260K.bin');
	await shot(page, 'tests/screenshots/storage.png', true);
	await page.getByRole('button', { name: 'Delete tok512.bin' }).click();
	await expect(rows).toHaveCount(1);
});

test('a seed reproduces a sampled completion; the view lives in the URL', async ({ page }) => {
	await openApp(page, { temperature: 1, top_p: 0.95, max_tokens: 30, seed: 7, prompt: 'The dog' });
	await waitForModel(page);
	const a = await generateText(page);
	const again = await generateText(page);
	expect(again).toBe(a);
	await page.getByTestId('seed').fill('8');
	const b = await generateText(page);
	expect(b).not.toBe(a);
	await page.getByTestId('prompt').fill('The cat');
	await expect(page).toHaveURL(/prompt=The\+cat/);
	await expect(page).toHaveURL(/seed=8/);
	await expect(page).toHaveURL(/temperature=1(&|$)/);
});

test('without a WebGPU adapter the app says so, runs on wasm, and samples the same text for the same seed', async ({
	page,
	playwright
}) => {
	const settings = { temperature: 1, top_p: 0.9, max_tokens: 25, seed: 3, prompt: 'Lily' };
	await openApp(page, { ...settings, backend: 'webgpu' });
	await waitForModel(page);
	await expect(page.getByTestId('status-line')).toHaveAttribute('data-backend', 'webgpu');
	const onGpu = await generateText(page);

	const browser = await playwright.chromium.launch({
		executablePath: chromiumPath,
		args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--no-first-run']
	});
	const cpuPage = await browser.newPage({ baseURL: `http://localhost:${process.env.LOUPE_TEST_PORT ?? 4173}` });
	await openApp(cpuPage, settings);
	await waitForModel(cpuPage);
	await expect(cpuPage.getByTestId('status-line')).toHaveAttribute('data-backend', 'wasm');
	await expect(cpuPage.getByText(/no GPU adapter is available/)).toBeVisible();
	// WebGPU used the WGSL logits kernel; wasm used its TypeScript reference: same seed, same text.
	expect(await generateText(cpuPage)).toBe(onGpu);
	await shot(cpuPage, 'tests/screenshots/wasm-fallback.png', true);
	await browser.close();
});

test("a user's own llama2.c files open from disk", async ({ page }) => {
	await openApp(page, { temperature: 0, max_tokens: 30 });
	await waitForModel(page);
	await page.getByTestId('model-files').setInputFiles([`${stories260KDir}/tok512.bin`, `${stories260KDir}/stories260K.bin`]);
	await expect(page.getByTestId('model-select')).toHaveValue('file:stories260K.bin');
	await waitForModel(page);
	const text = await generateText(page);
	expect(published.startsWith(text)).toBe(true);
	expect(text.length).toBeGreaterThan(50);
});

test('a single file is refused with what to choose instead', async ({ page }) => {
	await openApp(page);
	await waitForModel(page);
	await page.getByTestId('model-files').setInputFiles([`${stories260KDir}/stories260K.bin`]);
	await expect(page.getByText(/Choose two llama2\.c files together.*or an \.onnx with its tokenizer\.json/)).toBeVisible();
});

test('a shared link with its parameters in any order opens without errors and keeps the view', async ({ page }) => {
	const errors: string[] = [];
	page.on('pageerror', (e) => errors.push(e.message));
	await page.goto(`/?max_tokens=12&seed=9&hub=${encodeURIComponent(hub())}&prompt=The+cat&temperature=0.5`);
	await waitForModel(page);
	await expect(page.getByTestId('prompt')).toHaveValue('The cat');
	await expect(page.getByTestId('seed')).toHaveValue('9');
	await expect(page).toHaveURL(/prompt=The\+cat/);
	expect(errors).toEqual([]);
});

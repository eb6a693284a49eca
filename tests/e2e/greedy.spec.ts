import { expect, test, shot } from './app';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fixturesDir } from '../fixtures';
import { generateText, openApp, waitForModel } from './app';

const published = readFileSync(resolve(fixturesDir, 'stories260K.greedy256.txt'), 'utf8').replace(/\n$/, '');

test("greedy generation on WebGPU reproduces llama2.c's published stories260K output", async ({ page }) => {
	await openApp(page, { temperature: 0, max_tokens: 256, backend: 'webgpu' });
	await waitForModel(page);
	await expect(page.getByTestId('status-line')).toHaveAttribute('data-backend', 'webgpu');
	const text = await generateText(page);
	expect(text).toBe(published);
	await shot(page, 'tests/screenshots/greedy.png', true);
});

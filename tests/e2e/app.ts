// Helpers shared by the end-to-end tests: open the app on the local hub mirror, wait for the model.
import { expect, type Page } from '@playwright/test';

export const hub = (name = 'hub') => `http://localhost:${process.env.LOUPE_TEST_PORT ?? 4173}/${name}`;

export async function openApp(page: Page, params: Record<string, string | number> = {}) {
	const q = new URLSearchParams({ hub: hub(), ...Object.fromEntries(Object.entries(params).map(([k, v]) => [k, String(v)])) });
	await page.goto(`/?${q}`);
}

export async function waitForModel(page: Page) {
	await expect(page.getByTestId('generate')).toBeEnabled({ timeout: 120_000 });
}

export async function generateText(page: Page): Promise<string> {
	await page.getByTestId('generate').click();
	const completion = page.getByTestId('completion');
	await expect(completion).toHaveAttribute('data-state', 'streaming');
	await expect(completion).toHaveAttribute('data-state', /done|error/, { timeout: 200_000 });
	await expect(completion).toHaveAttribute('data-state', 'done');
	return (await completion.textContent()) ?? '';
}

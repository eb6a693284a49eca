// Issue 14's proof: the microscope works with nothing but the app's own origin. Every hub is
// unreachable (hub= a closed port; every other origin refused from the first request), yet the page
// opens the bundled stories260K and its bundled SAE: the prompt's token strip shows features, a
// feature card opens with its automatic label and top examples, and steering the feature changes
// the completion.
import { readFileSync } from 'node:fs';
import { expect, test, waitForModel, shot } from './app';

// This spec needs the service worker (playwright.config.ts blocks it elsewhere).
test.use({ serviceWorkers: 'allow' });

const explanations = (hook: string) =>
	new Map(
		readFileSync(`static/bundled/loupe/stories260K-saes/resolve/main/${hook}/explanations.jsonl`, 'utf8')
			.trim()
			.split('\n')
			.map((l) => JSON.parse(l) as { index: string; description: string })
			.map((e) => [Number(e.index), e.description])
	);

test('with every hub unreachable, the bundled model and SAE show, label and steer a feature', async ({ page, context }) => {
	const app = new URL(test.info().project.use.baseURL!).origin;
	// Offline from the start, but for the app's own origin (the first visit has no service worker yet).
	await context.route(
		(u) => u.origin !== app,
		(r) => r.abort('internetdisconnected')
	);
	await page.setViewportSize({ width: 1280, height: 800 });
	await page.goto(`/?${new URLSearchParams({ hub: 'http://127.0.0.1:9', temperature: '0', max_tokens: '16' })}`);
	await waitForModel(page);
	// The closed hub was tried, then the app's own copy opened, and the page says so.
	await expect(page.getByTestId('error-banner').filter({ hasText: 'ships with' }).first()).toBeVisible();

	await page.getByTestId('prompt').fill('Once upon a time, there was a little cat named Tom. Tom liked to play in the sun.');
	const strip = page.getByTestId('token-strip');
	// Features of the bundled SAE light up the prompt's tokens (BOS aside).
	const lit = strip.locator('[data-token-index]:not([data-token-index="0"])');
	await expect
		.poll(async () => (await lit.evaluateAll((els) => els.filter((e) => Number(e.getAttribute('data-strength')) > 0).length)) ?? 0, {
			timeout: 60_000
		})
		.toBeGreaterThan(5);
	await shot(page, 'tests/screenshots/offline-default-strip.png');

	// The strongest token's top feature opens its card.
	const strongest = await lit.evaluateAll((els) => {
		const best = els.reduce((a, b) => (Number(b.getAttribute('data-strength')) > Number(a.getAttribute('data-strength')) ? b : a));
		return Number(best.getAttribute('data-token-index'));
	});
	await strip.locator(`[data-token-index="${strongest}"]`).click();
	const card = page.getByTestId('feature-card');
	await expect(card).toBeVisible();
	const feature = Number(await card.getAttribute('data-feature'));
	const label = explanations('blocks.2.hook_resid_pre').get(feature)!;
	expect(label).toMatch(/^fires on: /);
	await expect(card.getByTestId('feature-label')).toContainText(label);
	await expect(card.getByTestId('feature-label')).toContainText(/automatic/i);
	await expect(card.getByTestId('top-examples').locator('li').first()).toBeVisible();
	await shot(page, 'tests/screenshots/offline-default-card.png', true);

	// One click from the card to steering, then the side-by-side completion.
	await card.getByTestId('feature-steer').click();
	await page.getByTestId('steer-strength').first().fill('12');
	await page.getByTestId('steer-generate').click();
	const steered = page.getByTestId('completion-steered');
	const plain = page.getByTestId('completion-default');
	await expect(page.getByTestId('divergence')).toBeVisible({ timeout: 120_000 });
	expect(await steered.textContent()).not.toBe(await plain.textContent());
	await shot(page, 'tests/screenshots/offline-default-steered.png', true);
});

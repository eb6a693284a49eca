// Text from files is shown as text: a label, an imported Neuronpedia explanation, a token of a saved
// Neuronpedia page and a file's name, each `<img src=x onerror=…>`, appear as those characters and no
// handler runs. The page's policy would refuse an inline handler anyway; the test bypasses it, so only
// the escaping is on trial (a control proves the same markup does run when parsed as HTML).
import { expect, openApp, test, waitForModel } from './app';
import { TEST_REPO, writeTestSaes } from '../sae-fixture.mjs';

test.beforeAll(() => writeTestSaes());
test.use({ bypassCSP: true });

/** Markup whose handler records `where` in window.__xss if it is ever parsed as HTML. */
const xss = (where: string) => `<img src=x onerror="window.__xss.push('${where}')">`;
const file = (name: string, body: unknown) => ({ name, mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(body)) });

test('markup in labels, explanations, tokens and file names is shown as text and never runs', async ({ page }) => {
	await page.addInitScript(() => ((window as unknown as { __xss: string[] }).__xss = []));
	const ran = () => page.evaluate(() => (window as unknown as { __xss: string[] }).__xss);
	await openApp(page, { prompt: 'Lily saw a cat', sae: `${TEST_REPO}/token-detector` });
	await waitForModel(page);
	await expect(page.getByTestId('token-strip')).toBeVisible({ timeout: 120_000 });

	// Labels: an imported explanation, from a file with markup for a name.
	await page.getByTestId('feature-id').fill('7');
	await page.getByRole('button', { name: 'Open', exact: true }).click();
	const card = page.getByTestId('feature-card');
	await expect(card).toHaveAttribute('data-feature', '7');
	await page.locator('summary', { hasText: 'Labels' }).click();
	await page
		.getByTestId('labels-file')
		.setInputFiles(file(`${xss('labels file name')}.json`, [{ index: 7, description: xss('explanation') }]));
	await expect(card.getByTestId('feature-label')).toContainText(xss('explanation'));
	// A file that is not labels: its name is in the message.
	await page
		.getByTestId('labels-file')
		.setInputFiles({ name: `${xss('bad file name')}.json`, mimeType: 'application/json', buffer: Buffer.from('{') });
	await expect(page.getByTestId('error-banner').first()).toContainText(xss('bad file name'));

	// One's own label.
	await card.getByRole('button', { name: 'edit' }).click();
	await card.getByTestId('label-input').fill(xss('own label'));
	await card.getByRole('button', { name: 'Save label' }).click();
	await expect(card.getByTestId('feature-label')).toContainText(xss('own label'));

	// A saved Neuronpedia feature page: its explanation, its example tokens, its promoted tokens and its file name.
	await page.getByTestId('neuronpedia-file').setInputFiles(
		file(`${xss('page file name')}.json`, {
			modelId: 'stories260K',
			layer: '0-res',
			index: '7',
			explanations: [{ description: xss('page explanation') }],
			activations: [{ tokens: ['a', xss('page token')], values: [0, 1], maxValue: 1 }],
			pos_str: [xss('promoted token')],
			pos_values: [1]
		})
	);
	const imported = page.getByTestId('imported-feature-card');
	await expect(imported.getByTestId('imported-from')).toContainText(xss('page file name'));
	await expect(imported).toContainText(xss('page explanation'));
	await expect(imported).toContainText(xss('page token'));

	// No element was made of the markup, and no handler ran (an <img src=x> fails to load at once).
	await expect(page.locator('img[src="x"]')).toHaveCount(0);
	expect(await ran()).toEqual([]);

	// The control: the same markup parsed as HTML in this page does run.
	await page.evaluate((html) => document.body.insertAdjacentHTML('beforeend', html), xss('control'));
	await expect.poll(ran).toEqual(['control']);
});

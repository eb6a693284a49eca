import { expect, test, shot } from './app';
import { openApp, waitForModel } from './app';
import { TEST_REPO, writeTestSaes } from '../sae-fixture.mjs';

test.beforeAll(() => writeTestSaes());

const count = (text: string, piece: string) => text.split(piece).length - 1;

test('steering a feature whose top logit is X makes X more frequent than in the default completion, same seed', async ({ page }) => {
	await openApp(page, {
		prompt: 'Once upon a time',
		temperature: 0.8,
		seed: 5,
		max_tokens: 30,
		sae: `${TEST_REPO}/last-layer`,
		feature: 394,
		backend: 'webgpu' // the WGSL steer kernel on ORT's GPU buffer is the point
	});
	await waitForModel(page);
	const card = page.getByTestId('feature-card');
	await expect(card).toHaveAttribute('data-feature', '394', { timeout: 120_000 });
	const x = ((await card.getByTestId('positive-logits').locator('li code').first().textContent()) ?? '').trim();
	expect(x.length).toBeGreaterThan(1);

	await page.getByTestId('steer-add').click();
	await page.getByTestId('steer-value').fill('40');
	await page.getByTestId('steer-value').press('Enter');
	await expect(page).toHaveURL(/steer=394%3Aadd%3A40%3An/);
	await page.getByTestId('steer-generate').click();
	await expect(page.getByTestId('steer-generate')).toBeDisabled();
	await expect(page.getByTestId('steer-generate')).toBeEnabled({ timeout: 200_000 });
	await expect(page.getByTestId('next-token-table')).toBeVisible();
	const base = (await page.getByTestId('completion-default').textContent()) ?? '';
	const steered = (await page.getByTestId('completion-steered').textContent()) ?? '';
	console.log(`"${x}": ${count(base, x)} times in the default completion, ${count(steered, x)} times steered`);
	expect(count(steered, x)).toBeGreaterThan(count(base, x));
	expect(count(steered, x)).toBeGreaterThanOrEqual(3);
	await expect(page.getByTestId('divergence')).toBeVisible();
	// The steered next-token distribution puts X on top.
	await expect(page.getByTestId('next-token-table').locator('tbody tr').first().locator('td').nth(2)).toHaveText(
		x === '' ? /.*/ : new RegExp(x.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
	);
	await shot(page, 'tests/screenshots/steering.png', true);

	// Scoped to the generated tokens (through the entry's scope control): the prompt is not steered, so
	// the next-token table is the default's row for row and the first token agrees; the rest is steered.
	await page.getByTestId('steer-scope').selectOption('generated');
	await expect(page).toHaveURL(/steer=394%3Aadd%3A40%3An%3Agen/);
	await page.getByTestId('steer-generate').click();
	await expect(page.getByTestId('steer-generate')).toBeDisabled();
	await expect(page.getByTestId('steer-generate')).toBeEnabled({ timeout: 200_000 });
	await expect(page.getByTestId('next-token-table')).toBeVisible(); // written after both completions
	const rows = await page
		.getByTestId('next-token-table')
		.locator('tbody tr')
		.evaluateAll((trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent)));
	expect(rows.length).toBe(10);
	for (const [piece, p, steeredPiece, steeredP] of rows) expect([steeredPiece, steeredP]).toEqual([piece, p]);
	await expect(page.getByTestId('divergence')).toBeVisible();
	const at = Number((await page.getByText(/diverges at token \d+/).textContent())?.match(/token (\d+)/)?.[1]);
	console.log(`scoped to generated tokens: next-token table unchanged, completions diverge at token ${at}`);
	expect(at).toBeGreaterThanOrEqual(2);

	// Reset clears the setup, in the panel and in the URL.
	await page.getByTestId('steer-reset').click();
	await expect(page.getByTestId('steer-spec')).toHaveCount(0);
	await expect(page).not.toHaveURL(/steer=394/);
});

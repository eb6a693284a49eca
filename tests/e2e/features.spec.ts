import { expect, test, shot } from './app';
import { openApp, waitForModel } from './app';
import { TEST_REPO, writeTestSaes } from '../sae-fixture.mjs';

test.beforeAll(() => writeTestSaes());

test('an SAELens SAE from the hub: the token strip lights up and a feature card opens', async ({ page }) => {
	await openApp(page, { prompt: 'Lily saw a big dog', backend: 'webgpu' });
	await waitForModel(page);
	await page.getByTestId('sae-hub').fill(`${TEST_REPO}/token-detector`);
	await page.getByTestId('sae-load').click();
	await expect(page.getByTestId('sae-card')).toContainText('reads blocks.0.hook_resid_pre');
	await expect(page.getByTestId('sae-card')).toContainText('encodes on the GPU');
	await expect(page.getByTestId('reconstruction')).toContainText(
		/\(\d+ tokens, BOS left out\): MSE [\d.e-]+\s+·\s+explained variance -?[\d.]+%\s+·\s+cosine 0\.\d{3}/
	);
	const strip = page.getByTestId('token-strip');
	await expect(strip).toBeVisible();
	const tokens = strip.locator('[data-token-index]');
	const n = await tokens.count();
	expect(n).toBeGreaterThan(3);

	// Every token's own detector fires with 0.5: hover a token, its tooltip lists feature #id.
	const third = tokens.nth(2);
	const id = Number(await third.getAttribute('data-token-id'));
	await third.hover();
	await expect(page.getByTestId('token-tooltip')).toContainText(`#${id} 0.500`);
	await expect(page.getByTestId('error-banner')).toHaveCount(0);
	await expect(strip.locator('[data-token-index="0"]')).toHaveText('<s>');
	await shot(page, 'tests/screenshots/token-strip-hover.png', true);

	// Open that feature: its activation at that token is 0.5, and the URL holds sae and feature.
	await page
		.getByTestId('token-tooltip')
		.getByRole('button', { name: new RegExp(`^#${id} `) })
		.click();
	const card = page.getByTestId('feature-card');
	await expect(card).toHaveAttribute('data-feature', String(id));
	await expect(card.getByTestId('feature-activations').locator('[title]').nth(2)).toHaveAttribute('title', /: 0\.5000$/);
	await expect(card.getByTestId('positive-logits').locator('li')).toHaveCount(10);
	await expect(card.getByTestId('nearest-features').locator('li')).toHaveCount(10);
	await expect(page).toHaveURL(
		new RegExp(`sae=${encodeURIComponent(`${TEST_REPO}/token-detector`).replace(/%2F/g, '%2F')}.*feature=${id}`)
	);
	await expect(strip.locator('[data-token-index="2"]')).toHaveAttribute('data-strength', /^0\.5/);
	await shot(page, 'tests/screenshots/feature-card.png', true);

	// The link reproduces the view.
	const url = page.url();
	await page.goto(url);
	await expect(page.getByTestId('feature-card')).toHaveAttribute('data-feature', String(id), { timeout: 120_000 });
});

test('an SAE whose width does not match the model is refused, and the page keeps working', async ({ page }) => {
	await openApp(page, { prompt: 'Tim' });
	await waitForModel(page);
	await page.getByTestId('sae-hub').fill(`${TEST_REPO}/wrong-width`);
	await page.getByTestId('sae-load').click();
	const banner = page.locator('[data-testid="error-banner"][data-code="sae-mismatch"]');
	await expect(banner).toContainText(
		"This SAE reads vectors of width 32 (d_in), but stories260K's residual stream at blocks.0.hook_resid_pre has width 64"
	);
	await shot(page, 'tests/screenshots/sae-mismatch.png', true);
	await page.getByTestId('sae-hub').fill(`${TEST_REPO}/truncated`);
	await page.getByTestId('sae-load').click();
	await expect(page.locator('[data-testid="error-banner"][data-code="not-an-sae"]')).toContainText(
		'sae_weights.safetensors is not a readable safetensors file'
	);
	await page.getByTestId('open-storage').click();
	// The valid (if mismatched) SAE's files are cached; the truncated one's are not kept.
	await expect(page.locator('[data-testid="cached-file"][data-url*="/wrong-width/"]')).toHaveCount(2);
	await expect(page.locator('[data-testid="cached-file"][data-url*="/truncated/"]')).toHaveCount(0);
	await page.getByTestId('sae-hub').fill(`${TEST_REPO}/token-detector`);
	await page.getByTestId('sae-load').click();
	await expect(page.getByTestId('token-strip')).toBeVisible();
});

// The playground's layout: the microscope above the fold, no sideways scrolling at 1280×800,
// 1920×1080 in classroom view and 390×844 (screenshots in tests/screenshots/), the header's buttons
// on one row; the ranked list of features on the text (token-detector: feature v fires 0.5 on token
// v, so the expected list comes from the tokens), the strip following the prompt as one types, the
// feature search by id and by label, the tour; a saved label on the open card; and two bugs: corpus
// progress callbacks returned a Svelte state proxy comlink cannot clone, and an old side-by-side
// comparison stayed beside another prompt and a new run.
import { expect, test, type Page } from '@playwright/test';
import { openApp, shot, waitForModel } from './app';
import { TEST_REPO, writeTestSaes } from '../sae-fixture.mjs';

test.beforeAll(() => writeTestSaes());

const sae = `${TEST_REPO}/token-detector`;

async function noSidewaysScroll(page: Page) {
	const { scroll, client } = await page.evaluate(() => ({
		scroll: document.documentElement.scrollWidth,
		client: document.documentElement.clientWidth
	}));
	expect(scroll, 'the page scrolls sideways').toBeLessThanOrEqual(client);
	// The header's buttons on one row (those shown: the Graph link is hidden on phones).
	const tops = await page
		.getByTestId('header-nav')
		.locator(':scope > *')
		.evaluateAll((els) => els.filter((e) => e.getClientRects().length > 0).map((e) => Math.round(e.getBoundingClientRect().top)));
	expect(new Set(tops).size, `header buttons at ${tops}`).toBe(1);
}

async function tokenIds(page: Page) {
	const strip = page.getByTestId('token-strip');
	return (await strip
		.locator('[data-token-index]')
		.evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-token-id'))))) as number[];
}

test('the microscope: ranked features, search, typing, tour, label, corpus progress, and the layout at three sizes', async ({ page }) => {
	// Every structured clone that fails on the page's side of a MessagePort (comlink's replies to the worker).
	await page.addInitScript(() => {
		const w = window as unknown as { cloneErrors: string[] };
		w.cloneErrors = [];
		const post = MessagePort.prototype.postMessage;
		MessagePort.prototype.postMessage = function (this: MessagePort, ...args: Parameters<MessagePort['postMessage']>) {
			try {
				return post.apply(this, args);
			} catch (e) {
				w.cloneErrors.push(String(e));
				throw e;
			}
		} as MessagePort['postMessage'];
	});
	await page.setViewportSize({ width: 1280, height: 800 });
	await openApp(page, { prompt: 'the dog and the cat', sae, tour: 1 });

	// The tour: asked for in the URL, three steps, skipped, reopened from the header.
	const tour = page.getByTestId('tour');
	await expect(tour).toHaveAttribute('data-step', '1');
	await page.getByTestId('tour-next').click();
	await expect(tour).toHaveAttribute('data-step', '2');
	await page.getByTestId('tour-skip').click();
	await expect(tour).toHaveCount(0);
	expect(await page.evaluate(() => localStorage.getItem('loupe.tour.dismissed'))).toBe('1');
	await page.getByTestId('tour-open').click();
	await expect(tour).toHaveAttribute('data-step', '1');
	await page.getByTestId('tour-skip').click();

	await waitForModel(page);
	await expect(page.getByTestId('token-strip')).toBeVisible({ timeout: 120_000 });
	const ids = await tokenIds(page);
	// By max, BOS ignored: the features of the tokens after BOS come first, each at 0.5 (others fire weaker, on similar embeddings).
	const items = page.getByTestId('feature-list-item');
	await expect(items.first()).toHaveAttribute('data-max', /^0\.(5|49999)/);
	const listed = await items.evaluateAll((els) =>
		els.map((e) => [Number(e.getAttribute('data-feature')), Number(e.getAttribute('data-max'))])
	);
	const own = new Set(ids.slice(1));
	expect(new Set(listed.slice(0, own.size).map(([f]) => f))).toEqual(own);
	for (const [f, max] of listed)
		if (own.has(f)) expect(max).toBeCloseTo(0.5, 4);
		else expect(max).toBeLessThan(0.5);
	// By mean: " the" is there twice, so its feature comes first, at 2 × 0.5 over the tokens after BOS.
	await page.getByTestId('feature-rank-by').selectOption('mean');
	const the = ids.find((id, i) => i > 0 && ids.indexOf(id, i + 1) > 0)!;
	await expect(items.first()).toHaveAttribute('data-feature', String(the));
	expect(Number(await items.first().getAttribute('data-mean'))).toBeGreaterThanOrEqual(1 / (ids.length - 1) - 1e-4);
	await page.getByTestId('feature-rank-by').selectOption('max');

	// The strip follows the prompt as one types (no button).
	await page.getByTestId('prompt').fill('Lily saw a big dog in the park');
	await expect.poll(async () => (await tokenIds(page)).length).toBeGreaterThan(ids.length);

	// Search by id opens the card; the card is above the fold with the prompt and the strip.
	await page.getByTestId('feature-search').fill('#7');
	await page.getByTestId('feature-search-open').click();
	const card = page.getByTestId('feature-card');
	await expect(card).toHaveAttribute('data-feature', '7');
	for (const id of ['prompt', 'token-strip', 'feature-card'])
		expect((await page.getByTestId(id).boundingBox())!.y, `${id} above the fold`).toBeLessThan(800);
	await page.getByTestId('feature-search').fill('#9999');
	await expect(page.getByTestId('feature-search-open')).toBeDisabled();

	// A label saved on the card shows on it (from what the engine saved, without rebuilding the card).
	await card.getByTestId('label-edit').click();
	await card.getByTestId('label-input').fill('a byte, for the test');
	await card.getByRole('button', { name: 'Save label' }).click();
	await expect(card.getByTestId('feature-label')).toContainText('“a byte, for the test” your label');
	// A corpus run's progress callbacks return nothing comlink fails to clone ("Unserializable return value" once per context).
	await page.locator('input[type=radio][value=text]').check();
	await page.getByTestId('corpus-text').fill('Lily saw a big dog.\nTom saw the park.\nTim had a red ball.');
	await page.getByTestId('corpus-run').click();
	await expect(page.getByTestId('corpus-summary')).toContainText('in 3 contexts', { timeout: 120_000 });
	expect(await page.evaluate(() => (window as unknown as { cloneErrors: string[] }).cloneErrors)).toEqual([]);
	// Search by label finds it.
	await page.getByTestId('feature-search').fill('BYTE');
	await expect(page.getByTestId('feature-search-hits').locator('li')).toHaveText([/#7\s+a byte, for the test/]);

	// The layout at three sizes, with the card open: no sideways scrolling, header buttons on one row.
	await page.getByTestId('feature-search').fill('');
	await page.getByTestId('token-strip').locator('[data-token-index="3"]').click();
	await page.mouse.move(0, 0);
	for (const [w, h, classroom, name] of [
		[1280, 800, false, 'landing-1280x800'],
		[1920, 1080, true, 'classroom-1920x1080'],
		[390, 844, false, 'phone-390x844']
	] as const) {
		await page.setViewportSize({ width: w, height: h });
		if (classroom !== (await page.getByTestId('classroom-toggle').evaluate((b) => b.classList.contains('active'))))
			await page.getByTestId('classroom-toggle').click();
		await page.evaluate(() => window.scrollTo(0, 0));
		await noSidewaysScroll(page);
		await shot(page, `tests/screenshots/${name}.png`);
	}
});

test('an old side-by-side comparison is not shown beside another prompt or a new run', async ({ page }) => {
	await openApp(page, { prompt: 'Tim', sae, max_tokens: 6, steer: '5:add:8:n' });
	await waitForModel(page);
	await expect(page.getByTestId('token-strip')).toBeVisible({ timeout: 120_000 });
	await page.getByTestId('steer-generate').click();
	await expect(page.getByTestId('next-token-table')).toBeVisible({ timeout: 120_000 });
	await expect(page.getByTestId('comparison')).toBeVisible();
	// Another prompt: the table and completions of "Tim" go.
	await page.getByTestId('prompt').fill('Lily');
	await expect(page.getByTestId('next-token-table')).toHaveCount(0);
	await expect(page.getByTestId('comparison')).toHaveCount(0);
	// A new run: its own completions, and its own table only once it is done.
	await page.getByTestId('steer-generate').click();
	await expect(page.getByTestId('completion-default')).toContainText('Lily');
	await expect(page.getByTestId('next-token-table')).toBeVisible({ timeout: 120_000 });
	await expect(page.getByTestId('completion-steered')).toContainText('Lily');
});

import { expect, test, shot } from './app';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openApp, waitForModel } from './app';
import { TEST_REPO, writeTestSaes } from '../sae-fixture.mjs';

test.beforeAll(() => writeTestSaes());

// " saw" is a single stories260K token; it appears in two of the three contexts.
const corpus = ['Lily saw a big dog.', 'Tom saw the park.', 'Tim had a red ball and a cat.'].join('\n');

test('a corpus run gives density, histogram and top examples, survives a reload, and labels import and search', async ({ page }) => {
	await openApp(page, { prompt: 'Lily saw a cat', sae: `${TEST_REPO}/token-detector` });
	await waitForModel(page);
	const strip = page.getByTestId('token-strip');
	await expect(strip).toBeVisible({ timeout: 120_000 });
	const dog = strip.locator('[data-token-index]').filter({ hasText: /^\s*saw$/ });
	const dogId = Number(await dog.getAttribute('data-token-id'));

	// Corpus: pasted text, one context per line.
	await page.locator('input[type=radio][value=text]').check();
	await page.getByTestId('corpus-text').fill(corpus);
	await page.getByTestId('corpus-run').click();
	await expect(page.getByTestId('corpus-summary')).toContainText('pasted text', { timeout: 120_000 });
	await expect(page.getByTestId('corpus-progress')).toHaveAttribute('value', '3');

	// The " saw" detector fired in two of the three contexts, with 0.5 at " saw".
	await page.getByTestId('feature-id').fill(String(dogId));
	await page.getByRole('button', { name: 'Open', exact: true }).click();
	const card = page.getByTestId('feature-card');
	await expect(card).toHaveAttribute('data-feature', String(dogId));
	await expect(card.getByTestId('feature-density')).toContainText(/fires on [\d.]+%/);
	const examples = card.getByTestId('top-examples').locator('li');
	await expect(examples).toHaveCount(2);
	await expect(examples.first()).toContainText('0.500');
	await expect(examples.first().locator('.max')).toHaveText(/saw/);
	await expect(card.getByTestId('feature-histogram')).toBeVisible();
	await shot(page, 'tests/screenshots/feature-card-corpus.png', true);

	// Dense features (> 1% of tokens) can be hidden from the strip; " saw" is one here.
	await dog.hover();
	await expect(page.getByTestId('token-tooltip')).toContainText(`#${dogId}`);
	await page.getByTestId('hide-dense').check();
	await dog.hover();
	await expect(page.getByTestId('token-tooltip')).not.toContainText(`#${dogId} `);
	await page.getByTestId('hide-dense').uncheck();

	// Labels: a Neuronpedia bulk export (gzipped JSONL, two explanations for one feature), search, and a label of one's own.
	const dir = mkdtempSync(join(tmpdir(), 'loupe-labels-'));
	const file = join(dir, 'batch-0.jsonl.gz');
	writeFileSync(
		file,
		gzipSync(
			[
				{ index: String(dogId), description: 'seeing things', scoreV1: 0.2, modelId: 'stories260K' },
				{ index: String(dogId), description: 'the word saw, as in dog', scoreV1: 0.9, modelId: 'stories260K' },
				{ index: 3, description: 'a byte' },
				{ nope: 1 }
			]
				.map((r) => JSON.stringify(r))
				.join('\n')
		)
	);
	await page.locator('summary', { hasText: 'Labels' }).click();
	await page.getByTestId('labels-file').setInputFiles(file);
	await expect(page.getByTestId('labels-note')).toHaveText('Imported 3 explanations of 2 features (1 row skipped).');
	await expect(card.getByTestId('feature-explanations').locator('li')).toHaveText([
		/the word saw, as in dog\s+score 0\.90/,
		/seeing things\s+score 0\.20/
	]);
	await page.getByTestId('label-search').fill('DOG');
	await page.getByRole('button', { name: 'Search' }).click();
	await page
		.getByTestId('label-hits')
		.getByRole('button', { name: `#${dogId}` })
		.click();
	await expect(card.getByTestId('feature-label')).toContainText('“the word saw, as in dog” Neuronpedia');
	await card.getByRole('button', { name: 'edit' }).click();
	await card.getByTestId('label-input').fill('dogs, in stories');
	await card.getByRole('button', { name: 'Save label' }).click();
	await expect(card.getByTestId('feature-label')).toContainText('“dogs, in stories” your label');
	await expect(card.getByTestId('feature-explanations').locator('li')).toHaveCount(2);

	// The feature as Neuronpedia feature JSON, opened again from the file as an offline page.
	const download = page.waitForEvent('download');
	await card.getByTestId('feature-export').click();
	const saved = await (await download).path();
	const json = JSON.parse(readFileSync(saved, 'utf8'));
	expect(json).toMatchObject({ modelId: 'stories260K', index: String(dogId), hookName: 'blocks.0.hook_resid_pre' });
	await page
		.getByTestId('neuronpedia-file')
		.setInputFiles({ name: 'feature.json', mimeType: 'application/json', buffer: readFileSync(saved) });
	const page2 = page.getByTestId('imported-feature-card');
	await expect(page2).toHaveAttribute('data-feature', String(dogId));
	await expect(page2.getByTestId('imported-from')).toContainText(`stories260K/${json.layer}/${dogId}, from feature.json`);
	await expect(page2.getByTestId('feature-explanations').locator('li')).toHaveCount(3);
	await expect(page2.getByTestId('top-examples').locator('li')).toHaveCount(2);
	await expect(page2.getByTestId('feature-density')).toHaveText(await card.getByTestId('feature-density').innerText());
	for (const [w, h] of [
		[1280, 800],
		[1920, 1080]
	]) {
		await page.setViewportSize({ width: w, height: h });
		await card.scrollIntoViewIfNeeded();
		await shot(page, `tests/screenshots/feature-card-explanations-${w}.png`);
		await page2.scrollIntoViewIfNeeded();
		await shot(page, `tests/screenshots/neuronpedia-import-${w}.png`);
	}
	await page.getByTestId('imported-close').click();

	// A reload restores the corpus statistics from IndexedDB, without running again.
	await page.reload();
	await expect(page.getByTestId('corpus-summary')).toContainText('pasted text', { timeout: 120_000 });
	await expect(page.getByTestId('feature-card').getByTestId('top-examples').locator('li')).toHaveCount(2);
	await expect(page.getByTestId('feature-card').getByTestId('feature-label')).toContainText('dogs, in stories');
});

test('a corpus the model writes itself, and SAE files dropped on the page', async ({ page }) => {
	await openApp(page, { prompt: 'Lily saw a cat' });
	await waitForModel(page);
	// Drop the SAELens folder's two files on the Features panel, as a person drags them from disk.
	const dir = `tests/.generated-hub/${TEST_REPO}/resolve/main/token-detector`; // written by writeTestSaes()
	const files = await Promise.all(
		['cfg.json', 'sae_weights.safetensors'].map(async (name) => ({
			name,
			data: [...(await import('node:fs')).readFileSync(`${dir}/${name}`)]
		}))
	);
	const transfer = await page.evaluateHandle((fs) => {
		const dt = new DataTransfer();
		for (const f of fs) dt.items.add(new File([new Uint8Array(f.data)], f.name));
		return dt;
	}, files);
	await page.getByTestId('features-panel').dispatchEvent('drop', { dataTransfer: transfer });
	await expect(page.getByTestId('sae-card')).toContainText('reads blocks.0.hook_resid_pre');
	await expect(page.getByTestId('token-strip')).toBeVisible();

	await page.locator('input[type=number].num').fill('2');
	await page.getByTestId('corpus-run').click();
	await expect(page.getByTestId('corpus-summary')).toContainText('2 stories written by stories260K', { timeout: 200_000 });
	await expect(page.getByTestId('corpus-summary')).toContainText('in 2 contexts');
});

// Contrast vectors, presets and the classroom view. The vector is made at a hook inside a layer
// (blocks.1.hook_mlp_out, what the MLP adds) and its values are checked against the plain TypeScript
// reference forward (mean of that tensor over each prompt set, BOS left out), read from the preset
// file the app exports.
import { expect, test, shot } from './app';
import { readFileSync } from 'node:fs';
import { openApp, waitForModel } from './app';
import { readArrayBuffer, stories260KDir } from '../fixtures';
import { maxAbsDiff } from '../numeric';
import { readLlama2cCheckpoint } from '../../src/lib/engine/model/llama2c/checkpoint';
import { Llama2cTokenizer } from '../../src/lib/engine/model/llama2c/tokenizer';
import { ReferenceLlama } from '../../src/lib/engine/model/llama2c/reference-forward';

const POSITIVE = ['The cat was happy', 'Lily loved her cat'];
const NEGATIVE = ['The dog was sad'];
const LAYER = 1;
const HOOK = `blocks.${LAYER}.hook_mlp_out`;

function referenceContrast(): Float32Array {
	const weights = readLlama2cCheckpoint(readArrayBuffer(`${stories260KDir}/stories260K.bin`));
	const tok = new Llama2cTokenizer(readArrayBuffer(`${stories260KDir}/tok512.bin`), weights.config.vocabSize);
	const mean = (prompts: string[]) => {
		const sum = new Float64Array(64);
		let n = 0;
		for (const p of prompts) {
			const ref = new ReferenceLlama(weights);
			tok.encode(p).forEach((id, t) =>
				ref.step(id, undefined, (l, kind, x) => {
					if (l !== LAYER || kind !== 'mlp_out' || t === 0) return;
					for (let i = 0; i < 64; i++) sum[i] += x[i];
					n++;
				})
			);
		}
		return sum.map((x) => x / n);
	};
	const pos = mean(POSITIVE);
	const neg = mean(NEGATIVE);
	return Float32Array.from(pos, (x, i) => x - neg[i]);
}

test('a contrast vector steers without an SAE, matches the reference mean difference, and travels as a preset file', async ({ page }) => {
	await openApp(page, { prompt: 'Once upon a time', temperature: 0.8, seed: 3, max_tokens: 24 });
	await waitForModel(page);
	const vectors = page.getByTestId('steering-vectors');
	await vectors.getByTestId('contrast-positive').fill(POSITIVE.join('\n'));
	await vectors.getByTestId('contrast-negative').fill(NEGATIVE.join('\n'));
	await vectors.getByTestId('contrast-hook').selectOption(HOOK);
	await vectors.getByTestId('contrast-name').fill('cat minus dog');
	await vectors.getByTestId('contrast-make').click();
	await expect(vectors.getByTestId('vector-item')).toContainText('cat minus dog');
	await expect(vectors.getByTestId('vector-item')).toContainText(`at ${HOOK}`);
	await vectors.getByTestId('vector-steer').click();
	await expect(page.getByTestId('steer-spec')).toContainText('cat minus dog');
	await page.getByTestId('steer-value').fill('6');
	await page.getByTestId('steer-value').press('Enter');
	await expect(page).toHaveURL(/steer=v[0-9a-z]+%3Aadd%3A6/);

	await page.getByTestId('steer-generate').click();
	await expect(page.getByTestId('steer-generate')).toBeDisabled();
	await expect(page.getByTestId('steer-generate')).toBeEnabled({ timeout: 200_000 });
	await expect(page.getByTestId('divergence')).toBeVisible();
	await shot(page, 'tests/screenshots/steering-vector.png', true);

	// Save as a preset, export it, and check the vector inside against the reference.
	await page.getByTestId('preset-name').fill('cats');
	await page.getByTestId('preset-save').click();
	await expect(page.getByTestId('preset-item')).toContainText('cats');
	const download = page.waitForEvent('download');
	await page.getByTestId('preset-export').click();
	const file = await (await download).path();
	const preset = JSON.parse(readFileSync(file, 'utf8'));
	expect(preset).toMatchObject({ loupe: 'steering-preset', name: 'cats', model: 'stories260K' });
	const got = Float32Array.from(preset.vectors[0].values as number[]);
	const want = referenceContrast();
	const worst = maxAbsDiff(got, want);
	console.log(`contrast vector vs TS reference: max |Δ| ${worst.toExponential(2)} (norm ${Math.hypot(...want).toFixed(3)})`);
	expect(worst).toBeLessThan(1e-4);

	// Delete both, then import the file: the preset and its vector come back and load.
	await page.getByRole('button', { name: 'Delete cats' }).click();
	await page.getByRole('button', { name: 'Delete cat minus dog' }).click();
	await expect(page.getByTestId('preset-item')).toHaveCount(0);
	await page.getByTestId('steer-reset').click();
	await page.getByTestId('preset-import').setInputFiles(file);
	await expect(page.getByTestId('preset-item')).toContainText('cats');
	await expect(page.getByTestId('steer-spec')).toContainText('cat minus dog');
	// A file that is not a preset says so.
	await page
		.getByTestId('preset-import')
		.setInputFiles({ name: 'notes.json', mimeType: 'application/json', buffer: Buffer.from('{"hello": 1}') });
	await expect(page.getByText(/is not a Loupe steering preset/)).toBeVisible();
});

test('the classroom view enlarges everything and lives in the URL', async ({ page }) => {
	await openApp(page, { prompt: 'Once upon a time' });
	await waitForModel(page);
	const before = (await page.getByTestId('generate').boundingBox())!.height;
	await page.getByTestId('classroom-toggle').click();
	await expect(page).toHaveURL(/classroom=1/);
	const after = (await page.getByTestId('generate').boundingBox())!.height;
	// The classroom view is a layout of its own with larger type, not a zoom: the button grows by more than a fifth.
	expect(after / before).toBeGreaterThan(1.2);
	await shot(page, 'tests/screenshots/classroom.png');
});

// Choosing a catalogue model the hub lacks: the load fails with its error, the previous model stays
// loaded, and the picker, the URL and the status line all name that model (they disagreed: the
// picker and the URL named the one that failed).
import { expect, hub, openApp, test, waitForModel } from './app';

test('a catalogue model the hub lacks leaves the loaded model named everywhere', async ({ page }) => {
	await openApp(page, { hub: hub() }); // the mirror holds stories260K only
	await waitForModel(page);
	await page.getByTestId('model-select').selectOption('stories15M');
	await expect(page.getByTestId('error-banner').first()).toBeVisible({ timeout: 60_000 });
	await expect(page.getByTestId('status-line')).toContainText('stories260K');
	await expect(page.getByTestId('model-select')).toHaveValue('stories260K');
	await expect(page).not.toHaveURL(/model=stories15M/);
});

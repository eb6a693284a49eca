// Issue 14: a URL anyone can host. tests/serve.mjs serves the same build under /loupe/ (a project
// page's sub-path, no rebuild: the build is path-independent). There the links, the engine's
// worker and onnxruntime-web's wasm, the bundled model and SAE and the service worker's scope all
// stay under /loupe/, and after one visit the page works offline there.
import { expect, test, waitForModel, shot } from './app';

// This spec needs the service worker (playwright.config.ts blocks it elsewhere).
test.use({ serviceWorkers: 'allow' });

test('the build served under /loupe/: everything stays under it, and it works offline there', async ({ page, context }) => {
	const seen: string[] = [];
	context.on('request', (r) => seen.push(new URL(r.url()).pathname));
	await page.goto('/loupe/?prompt=Tim%20saw%20a%20cat&max_tokens=8&temperature=0');
	await waitForModel(page);
	const strip = page.getByTestId('token-strip').locator('[data-token-index]');
	await expect(strip.first()).toBeVisible({ timeout: 60_000 });

	const scope = await page.evaluate(async () => (await navigator.serviceWorker.ready).scope);
	expect(new URL(scope).pathname).toBe('/loupe/');
	// Nothing the app asked its own origin for lies outside /loupe/ (the page's favicon aside).
	const outside = seen.filter((p) => !p.startsWith('/loupe/') && p !== '/favicon.ico');
	expect(outside).toEqual([]);
	expect(seen.some((p) => p.startsWith('/loupe/bundled/karpathy/tinyllamas/'))).toBe(true);
	expect(seen.some((p) => p.startsWith('/loupe/bundled/loupe/stories260K-saes/'))).toBe(true);
	expect(seen.some((p) => p.startsWith('/loupe/_app/') && p.endsWith('.wasm'))).toBe(true);
	// Links inside the app keep the sub-path.
	const links = await page.locator('a[href]').evaluateAll((as) => as.map((a) => (a as HTMLAnchorElement).href));
	const own = links.map((h) => new URL(h)).filter((u) => u.origin === new URL(page.url()).origin);
	expect(own.length).toBeGreaterThan(0);
	for (const u of own) expect(u.pathname).toMatch(/^\/loupe\//);

	await context.setOffline(true);
	await page.reload();
	await waitForModel(page);
	await expect(strip.first()).toBeVisible({ timeout: 60_000 });
	await shot(page, 'tests/screenshots/offline-subpath.png');
	await context.setOffline(false);
});

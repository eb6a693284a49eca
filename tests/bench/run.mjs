#!/usr/bin/env node
// Benchmarks in headless Chromium, one JSON object per line. `ratio` is always "how many times
// better than the peer" (>1 is better); the peer runs the same work on the same machine.
//   node tests/bench/run.mjs [--small] [--kernels | --steering | --segmentation | --training | --fused | --leaks | --attribution | --app]   (npm run bench builds first)
//
// generate_greedy:   tokens/s of greedy decoding of stories260K through the app, WebGPU (ORT WebGPU EP
//                    + the WGSL logits kernel) against the same app on the wasm EP (+ the TS reference).
// load_to_first_token: page load to the first generated token, warm cache, same two backends.
// main_thread_long_tasks: long tasks (>50 ms) on the UI thread while loading and generating.
// sae_encode_topk:   WGSL SAE encode + top-k against MatMul+Add+Relu+TopK in onnxruntime-web (/bench page).
// generate_fused_vs_unfused, dispatches_per_token, side_by_side_batched: stories260K's speed levers
//                    (/bench?fused=1): the fused graph over the plain one (tokens/s; GPU dispatches for
//                    one token) and side by side as one batch of two over the two streams one after the other.
// steering:          tokens/s of side by side (one batch of two) with 1 and 8 features over the same with
//                    none, same model (cut at the SAE's hook), same page, same seed.
// no_leaks:          live GPU buffers (created − destroyed) and the engine worker's heap
//                    (measureUserAgentSpecificMemory: this page is served cross-origin isolated) after
//                    the first load, after 20 model/SAE/hook switches, across 1,000 steered tokens with the
//                    setup changed every 10 (/bench?leaks=1; 3 switches and 200 tokens with --small).
// attribution_edges: every edge of stories260K's attribution graph (random transcoders at every layer),
//                    Loupe's WGSL backward passes against TensorFlow.js autograd (WebGPU), same page
//                    (/bench?attribution=1; a 16-token prompt, 4 tokens with --small).
import { chromium } from 'playwright-core';
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TEST_REPO, writeTestSaes } from '../sae-fixture.mjs';
import { writeExportRepo } from '../export-fixture.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const small = process.argv.includes('--small');
const kernelsOnly = process.argv.includes('--kernels');
const steeringOnly = process.argv.includes('--steering');
const segmentationOnly = process.argv.includes('--segmentation');
const trainingOnly = process.argv.includes('--training');
const fusedOnly = process.argv.includes('--fused');
const leaksOnly = process.argv.includes('--leaks');
const attributionOnly = process.argv.includes('--attribution');
const appOnly = process.argv.includes('--app'); // generate_greedy, load_to_first_token, main_thread_long_tasks
const port = Number(process.env.LOUPE_BENCH_PORT ?? 4180); // two runs side by side need two
const isolatedPort = port + 1;
const base = `http://localhost:${port}`;
const maxTokens = small ? 64 : 256;
const reps = small ? 2 : 3;
const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const quiet = [
	'--no-sandbox',
	'--disable-background-networking',
	'--disable-component-update',
	'--disable-sync',
	'--disable-quic',
	'--no-first-run'
];
const backends = {
	webgpu: [...quiet, '--enable-unsafe-webgpu', '--use-webgpu-adapter=swiftshader'],
	wasm: quiet // no WebGPU adapter: the app falls back to the wasm EP
};

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
// LOUPE_BUILD_DIR: a build of one's own (LOUPE_BUILD_DIR=… npx vite build) instead of build/.
const root = process.env.LOUPE_BUILD_DIR ? ['--root', process.env.LOUPE_BUILD_DIR] : [];
const serve = (p, ...more) =>
	spawn(process.execPath, [join(here, '..', 'serve.mjs'), '--port', String(p), ...root, ...more], { stdio: ['ignore', 'pipe', 'inherit'] });
const server = serve(port);
await new Promise((r) => server.stdout.once('data', r));

async function measure(backend) {
	const browser = await chromium.launch({ executablePath: chromiumPath, args: backends[backend] });
	const context = await browser.newContext();
	await context.addInitScript(() => {
		window.__longTasks = [];
		new PerformanceObserver((l) => window.__longTasks.push(...l.getEntries().map((e) => e.duration))).observe({
			type: 'longtask',
			buffered: true
		});
	});
	const page = await context.newPage();
	// backend= as launched: auto would send the model to wasm on SwiftShader (a software adapter).
	const url = `${base}/?hub=${encodeURIComponent(`${base}/hub`)}&temperature=0&max_tokens=${maxTokens}&backend=${backend}`;
	const ready = () =>
		page
			.getByTestId('generate')
			.waitFor({ state: 'visible' })
			.then(() =>
				page.waitForFunction(() => !document.querySelector('[data-testid="generate"]')?.hasAttribute('disabled'), null, {
					timeout: 120_000
				})
			);
	const generate = async () => {
		await page.getByTestId('generate').click();
		await page.waitForFunction(() => document.querySelector('[data-testid="completion"]')?.getAttribute('data-state') === 'done', null, {
			timeout: 600_000
		});
		const stats = page.getByTestId('generation-stats');
		return { tps: Number(await stats.getAttribute('data-tokens-per-second')), tokens: Number(await stats.getAttribute('data-tokens')) };
	};
	await page.goto(url); // first visit: download and cache
	await ready();
	const adapter = await page.getByTestId('status-line').textContent();
	const tps = [];
	for (let i = 0; i < reps; i++) tps.push((await generate()).tps);
	const firstToken = [];
	let longTasks = [];
	for (let i = 0; i < reps; i++) {
		const t0 = Date.now();
		await page.goto(url); // warm cache
		await ready();
		await page.getByTestId('generate').click();
		await page.waitForFunction(() => (document.querySelector('[data-testid="completion"]')?.textContent ?? '').length > 0, null, {
			timeout: 120_000,
			polling: 5
		});
		firstToken.push(Date.now() - t0);
		await page.waitForFunction(() => document.querySelector('[data-testid="completion"]')?.getAttribute('data-state') === 'done', null, {
			timeout: 600_000
		});
		longTasks = await page.evaluate(() => window.__longTasks);
	}
	await browser.close();
	return { tps: median(tps), firstToken: median(firstToken), longTasks, adapter: adapter?.replace(/\s+/g, ' ').trim() };
}

/** The /bench page's kernel benchmarks (WGSL vs onnxruntime-web on the same adapter). */
/** Opens a /bench page variant and returns its JSON lines once it is done (a screenshot kept). */
async function benchPage(query, screenshot, { base: at = base, args = [] } = {}) {
	const browser = await chromium.launch({ executablePath: chromiumPath, args: [...backends.webgpu, ...args] });
	const page = await browser.newPage();
	try {
		await page.goto(`${at}/bench${query}`);
		await page.waitForFunction(
			() => document.querySelector('[data-testid="bench-results"]')?.getAttribute('data-state') !== 'running',
			null,
			{ timeout: 3_600_000 }
		);
		const text = await page.getByTestId('bench-results').textContent();
		const state = await page.getByTestId('bench-results').getAttribute('data-state');
		if (state !== 'done')
			throw new Error(
				`the /bench${query} page failed: ${await page
					.locator('main')
					.innerText()
					.catch(() => '')}`
			);
		if (screenshot) await page.screenshot({ path: `tests/screenshots/${screenshot}.png`, fullPage: true });
		return text.split('\n').filter(Boolean);
	} finally {
		await browser.close();
	}
}

/** SAE encoding kernels against onnxruntime-web. */
const kernelBenches = () => benchPage(small ? '?small=1' : '');

/** SAE training tokens/s: the WGSL trainer against TensorFlow.js's WebGPU backend, same page and adapter. */
const trainingBench = () => benchPage(`?training=1${small ? '&small=1' : ''}`, 'bench-training');

/** stories260K's fused graph and batched side by side (the checkpoint from the mirrored hub). */
const fusedBench = () => benchPage(`?fused=1&hub=${encodeURIComponent(`${base}/hub`)}${small ? '&small=1' : ''}`, 'bench-fused');

/**
 * Leaks: on a server of its own that makes the page cross-origin isolated (other benches keep the
 * usual headers: isolation gives the wasm EP threads and would change their peers). Chromium is
 * asked to measure memory at once (ForceEagerMeasureMemory), and `gc` is exposed so the page and
 * the worker collect while a measurement waits (else it waits up to a minute for one).
 */
async function leaksBench() {
	writeExportRepo(); // the second model to switch to: the mirrored GPT-2 stand-in
	const isolated = serve(isolatedPort, '--isolated');
	await new Promise((r) => isolated.stdout.once('data', r));
	const ibase = `http://localhost:${isolatedPort}`;
	try {
		return await benchPage(`?leaks=1&hub=${encodeURIComponent(`${ibase}/hub`)}${small ? '&small=1' : ''}`, 'bench-leaks', {
			base: ibase,
			args: ['--enable-blink-features=ForceEagerMeasureMemory', '--js-flags=--expose-gc']
		});
	} finally {
		isolated.kill();
	}
}

/** Attribution edges, WGSL against TF.js (the checkpoint and tokenizer from the mirrored hub). */
const attributionBench = () =>
	benchPage(`?attribution=1&hub=${encodeURIComponent(`${base}/hub`)}${small ? '&small=1' : ''}`, 'bench-attribution');

/** The cost of hook points on an exported model (the mirrored GPT-2 stand-in): cut at 1 and 3 hooks vs uncut. */
function segmentationBench() {
	writeExportRepo();
	return benchPage(`?segmentation=gpt2-small&hub=${encodeURIComponent(`${base}/hub`)}`, 'bench-segmentation');
}

try {
	if (leaksOnly) for (const line of await leaksBench()) console.log(line);
	else if (attributionOnly) for (const line of await attributionBench()) console.log(line);
	else if (appOnly) await appBenches();
	else if (fusedOnly) for (const line of await fusedBench()) console.log(line);
	else if (segmentationOnly) for (const line of await segmentationBench()) console.log(line);
	else if (trainingOnly) for (const line of await trainingBench()) console.log(line);
	else if (!steeringOnly) for (const line of await kernelBenches()) console.log(line);
	if (steeringOnly) await steeringBench();
	else if (!kernelsOnly && !segmentationOnly && !trainingOnly && !fusedOnly && !leaksOnly && !attributionOnly && !appOnly) {
		for (const line of await fusedBench()) console.log(line);
		for (const line of await leaksBench()) console.log(line);
		for (const line of await trainingBench()) console.log(line);
		for (const line of await attributionBench()) console.log(line);
		await steeringBench();
		for (const line of await segmentationBench()) console.log(line);
		await appBenches();
	}
} finally {
	server.kill();
}

async function steeringBench() {
	writeTestSaes();
	const browser = await chromium.launch({ executablePath: chromiumPath, args: backends.webgpu });
	const page = await browser.newPage();
	const tokens = small ? 32 : 128;
	// Side by side is one batch of two now, so both streams of a run share one speed: the peer is the
	// same batch with no features (the 0 line), not the default row beside the steered one.
	let unsteered = 0;
	for (const n of [0, 1, 8]) {
		const steer = Array.from({ length: n }, (_, i) => `${394 + i}:add:2:n`).join(',');
		const q = new URLSearchParams({
			hub: `${base}/hub`,
			sae: `${TEST_REPO}/last-layer`,
			temperature: '0',
			max_tokens: String(tokens),
			prompt: 'Once upon a time',
			backend: 'webgpu' // the steer kernel's cost on the GPU (auto would pick wasm on SwiftShader)
		});
		if (steer) q.set('steer', steer);
		await page.goto(`${base}/?${q}`);
		// The button shows before the SAE is attached; a click then fails ("Nothing to steer with yet")
		// and no speed is ever set, which is how this bench once sat out its 600 s wait. So wait for
		// the SAE, and stop at an error in the panel instead of waiting.
		await page.getByTestId('sae-bar').waitFor({ timeout: 600_000 });
		await page.getByTestId('steer-generate').waitFor({ timeout: 120_000 });
		const speeds = [];
		for (let r = -1; r < reps; r++) {
			// r = -1: an untimed warm-up (the first run after a load pays for it)
			await page.getByTestId('steer-generate').click();
			await page.waitForFunction(
				() =>
					(document.querySelector('[data-testid="completion-steered"]')?.hasAttribute('data-tokens-per-second') ||
						document.querySelector('[data-testid="steering-panel"] [data-testid="error-banner"]')) &&
					!document.querySelector('[data-testid="steer-generate"]')?.hasAttribute('disabled'),
				null,
				{ timeout: 600_000 }
			);
			const failed = page.getByTestId('steering-panel').getByTestId('error-banner');
			if (await failed.count()) throw new Error(`the steering bench's side-by-side run failed: ${await failed.first().innerText()}`);
			const st = Number(await page.getByTestId('completion-steered').getAttribute('data-tokens-per-second'));
			if (r >= 0) speeds.push(st);
			await page.evaluate(() => document.querySelector('[data-testid="completion-steered"]')?.removeAttribute('data-tokens-per-second'));
		}
		const tps = median(speeds);
		if (n === 0) unsteered = tps;
		console.log(
			JSON.stringify({
				bench: 'steering',
				model: 'stories260K',
				shape: `${n} features at blocks.4.hook_resid_post, ${tokens} tokens`,
				value: Math.round(tps * 100) / 100,
				unit: 'tokens/s (side by side, both streams)',
				peer: 'the same side by side with no features (same page)',
				peer_value: Math.round(unsteered * 100) / 100,
				ratio: Math.round((tps / unsteered) * 1000) / 1000
			})
		);
	}
	await browser.close();
}

async function appBenches() {
	const gpu = await measure('webgpu');
	const cpu = await measure('wasm');
	const out = (o) => console.log(JSON.stringify(o));
	const round = (x, d = 2) => Math.round(x * 10 ** d) / 10 ** d;
	out({
		bench: 'generate_greedy',
		model: 'stories260K',
		shape: `max_tokens=${maxTokens}`,
		value: round(gpu.tps),
		unit: 'tokens/s',
		peer: 'onnxruntime-web wasm EP (same app)',
		peer_value: round(cpu.tps),
		ratio: round(gpu.tps / cpu.tps, 3),
		adapter: gpu.adapter
	});
	out({
		bench: 'load_to_first_token',
		model: 'stories260K',
		shape: 'warm cache',
		value: gpu.firstToken,
		unit: 'ms',
		peer: 'onnxruntime-web wasm EP (same app)',
		peer_value: cpu.firstToken,
		ratio: round(cpu.firstToken / gpu.firstToken, 3)
	});
	out({
		bench: 'main_thread_long_tasks',
		model: 'stories260K',
		shape: 'load + generate, webgpu',
		value: gpu.longTasks.length,
		unit: 'tasks > 50 ms',
		max_ms: round(Math.max(0, ...gpu.longTasks), 0)
	});
}

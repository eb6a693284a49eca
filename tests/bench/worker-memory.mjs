#!/usr/bin/env node
// The engine worker's memory in Chromium at real size (opt-in, not CI): the renderer's RSS (the
// worker lives in that process) while the built app, on wasm, opens a real-size export from picked
// files and then re-cuts it (a contrast vector at blocks.6.hook_resid_pre, then a side by side).
// Peak growth over the RSS with the default model loaded, as a multiple of the weights' bytes.
//   node tests/bench/worker-memory.mjs [--model gpt2|gemma3]   (after npm run build and npm run bench:real-size,
//   which writes /tmp/loupe-real-size/<model>-external); LOUPE_WM_TRACE=1 prints the RSS every 0.1 s (time:MB) to stderr
import { chromium } from 'playwright-core';
import { spawn, execSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { wordLevelTokenizer } from '../word-level-tokenizer.mjs';

const model = process.argv.includes('--model') ? process.argv[process.argv.indexOf('--model') + 1] : 'gpt2';
const vocab = { gpt2: 50257, gemma3: 262144 }[model];
if (!vocab) throw new Error(`--model takes gpt2 or gemma3, not ${model}`);
const dir = `/tmp/loupe-real-size/${model}-external`;
if (!existsSync(`${dir}/model.onnx_data`))
	throw new Error(`${dir} is not there: run npm run bench:real-size -- --model ${model} --variant external first`);
const weightsMB = statSync(`${dir}/model.onnx_data`).size / 2 ** 20;
// A word-level tokenizer as wide as the model's vocabulary (the weights are random: any words do).
const tdir = `/tmp/loupe-worker-memory-${model}`;
mkdirSync(tdir, { recursive: true });
const words = Array.from({ length: vocab }, (_, i) => (i === vocab - 1 ? '<eos>' : `w${i}`));
writeFileSync(`${tdir}/tokenizer.json`, JSON.stringify(wordLevelTokenizer(words, [vocab - 1], '<eos>')));
writeFileSync(`${tdir}/tokenizer_config.json`, JSON.stringify({ eos_token: '<eos>' }));
const port = 4230;
const server = spawn('node', ['tests/serve.mjs', '--port', String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
await new Promise((r) => server.stdout.once('data', r));
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
const rendererRss = () => {
	const out = execSync("ps -eo pid,rss,args | grep -- '--type=renderer' | grep -v grep || true").toString();
	return out
		.split('\n')
		.filter(Boolean)
		.reduce((a, l) => a + Number(l.trim().split(/\s+/)[1]) / 1024, 0);
};
let peak = 0;
const trace = [];
const t00 = Date.now();
const poll = setInterval(() => {
	const r = rendererRss();
	peak = Math.max(peak, r);
	if (process.env.LOUPE_WM_TRACE) trace.push(`${((Date.now() - t00) / 1000).toFixed(1)}:${Math.round(r)}`);
}, 100);
try {
	const page = await browser.newPage();
	await page.goto(`http://localhost:${port}/?backend=wasm&prompt=w5%20w6&max_tokens=4&temperature=0`);
	await page.waitForTimeout(3000);
	await page.waitForLoadState('networkidle');
	const base = rendererRss();
	peak = 0;
	await page
		.getByTestId('model-files')
		.setInputFiles([
			`${dir}/model.onnx`,
			`${dir}/model.onnx_data`,
			`${tdir}/tokenizer.json`,
			`${tdir}/tokenizer_config.json`,
			`${dir}/config.json`
		]);
	await page.waitForFunction(
		() =>
			/model\.onnx|gpt2/i.test(document.querySelector('[data-testid="status-line"]')?.textContent ?? '') &&
			!document.querySelector('[data-testid="generate"]')?.disabled,
		null,
		{ timeout: 600_000 }
	);
	await page.waitForTimeout(5000);
	const line = (step) => ({
		bench: 'worker_memory',
		model,
		step,
		weightsMB: Math.round(weightsMB),
		baselineMB: Math.round(base),
		rssMB: Math.round(rendererRss()),
		peakMB: Math.round(peak),
		peakOverWeights: +((peak - base) / weightsMB).toFixed(2)
	});
	// One line a step (the peak is the run's so far), and the RSS trace up to it when asked for.
	const report = (step) => {
		if (process.env.LOUPE_WM_TRACE) console.error(trace.splice(0).join(' '));
		console.log(JSON.stringify(line(step)));
	};
	report('load');
	const vectors = page.getByTestId('steering-vectors');
	await vectors.getByTestId('contrast-positive').fill('w5 w6');
	await vectors.getByTestId('contrast-negative').fill('w7 w8');
	await vectors.getByTestId('contrast-hook').selectOption('blocks.6.hook_resid_pre');
	await vectors.getByTestId('contrast-make').click();
	await page.waitForFunction(() => !document.querySelector('[data-testid="contrast-make"]')?.disabled, null, { timeout: 600_000 });
	await page.waitForTimeout(5000);
	report('contrast_vector'); // the capture at blocks.6 (a cut there)
	await page.getByTestId('vector-steer').first().click();
	await page.getByTestId('steer-generate').click();
	await page.waitForFunction(
		() => /cut|blocks/.test(document.body.innerText) && !document.querySelector('[data-testid="steer-generate"]')?.disabled,
		null,
		{ timeout: 600_000 }
	);
	await page.waitForTimeout(5000);
	report('after_cut'); // side by side with the vector
} finally {
	clearInterval(poll);
	await browser.close();
	server.kill();
}

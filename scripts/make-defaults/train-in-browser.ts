/**
 * The browser half of `npm run make-defaults`: the built app in headless Chromium (WebGPU on
 * SwiftShader here), driven through the engine its worker exposes (`self.loupeEngine`, as the
 * e2e tests reach it), so the SAEs are trained, exported and measured by Loupe's own trainer and
 * corpus run, exactly as a person's run on /train would be.
 */
import { readFileSync } from 'node:fs';
import { chromium, type Worker } from 'playwright-core';
import { chromiumArgs, chromiumPath } from '../../tests/chromium';
import type { TrainConfig } from '../../src/lib/engine/train/training-run';

export interface TrainedHook {
	hook: string;
	cfgJson: string;
	safetensors: Uint8Array;
	sparsity: Uint8Array;
	/** The last training step's metrics and the last CE-recovered measurement. */
	metrics: {
		explainedVariance: number;
		l0: number;
		dead: number;
		ce: { clean: number; spliced: number; zeroAblated: number; recovered: number } | null;
	};
	seconds: number;
	/** The corpus run of the trained SAE: the contexts (token ids) and its FeatureStats as plain arrays. */
	contexts: number[][];
	stats: Record<string, number | number[]>;
	/** When each phase began, in seconds from the start of the hook's run. */
	phases: [string, number][];
}

const fromBase64 = (s: string) => new Uint8Array(Buffer.from(s, 'base64'));

/** Opens the app at `appUrl` (its bundled model, no SAE) and returns its engine worker. */
export async function openEngine(appUrl: string) {
	const browser = await chromium.launch({ executablePath: chromiumPath, args: chromiumArgs });
	const page = await browser.newPage();
	page.on('console', (m) => {
		if (m.type() === 'error' && !m.text().includes('[W:onnxruntime')) console.error('[page]', m.text());
		else if (m.text().startsWith('[make-defaults]')) console.log(m.text()); // progress the worker reports
	});
	await page.goto(appUrl);
	await page.waitForFunction(
		() =>
			!document.querySelector('[data-testid="generate"]')?.hasAttribute('disabled') && !!document.querySelector('[data-testid="generate"]'),
		null,
		{ timeout: 300_000 }
	);
	const worker = page.workers().find((w) => w.url().includes('worker'));
	if (!worker) throw new Error('The engine worker did not start.');
	return { browser, worker };
}

/** Trains one SAE per hook on `text`, exports it, and runs the same text through it as a corpus run. */
export async function trainHooks(
	appUrl: string,
	hooks: string[],
	cfg: Omit<TrainConfig, 'hook' | 'name'>,
	corpusName: string,
	log: (s: string) => void,
	onTrained: (t: TrainedHook) => void = () => {}
): Promise<TrainedHook[]> {
	const { browser, worker } = await openEngine(appUrl);
	const out: TrainedHook[] = [];
	try {
		for (const hook of hooks) {
			const t0 = performance.now();
			log(`${hook}: training`);
			const r = await trainOne(worker, { ...cfg, hook, name: `stories260K ${hook}` } as TrainConfig, corpusName);
			const seconds = (performance.now() - t0) / 1000;
			log(
				`${hook}: done in ${seconds.toFixed(0)} s: explained variance ${r.metrics.explainedVariance.toFixed(3)}, L0 ${r.metrics.l0.toFixed(1)}, CE recovered ${r.metrics.ce ? (100 * r.metrics.ce.recovered).toFixed(1) + ' %' : '—'}`
			);
			log(`${hook}: phases (s from start) ${r.phases.map(([p, t]) => `${p} ${t}`).join(', ')}`);
			const t = { ...r, hook, seconds, safetensors: fromBase64(r.safetensors), sparsity: fromBase64(r.sparsity) };
			onTrained(t);
			out.push(t);
		}
	} finally {
		await browser.close();
	}
	return out;
}

const inWorker = readFileSync(new URL('./in-worker.js', import.meta.url), 'utf8')
	.trim()
	.replace(/;$/, '');

interface FromWorker {
	cfgJson: string;
	safetensors: string;
	sparsity: string;
	metrics: TrainedHook['metrics'];
	contexts: number[][];
	stats: TrainedHook['stats'];
	phases: TrainedHook['phases'];
}

async function trainOne(worker: Worker, cfg: TrainConfig, corpusName: string): Promise<FromWorker> {
	// The function goes as text and its argument as JSON (see in-worker.js).
	return worker.evaluate(`(${inWorker.replace(/^(\/\/.*\n)+/, '')})(${JSON.stringify({ cfg, corpusName })})`) as Promise<FromWorker>;
}

/**
 * `npm run attribute -- --browser --prompt TEXT [--model ID] [--transcoders default|DIR] [--prune] --out graph.json`
 *
 * The graph built where the app builds it: headless Chromium on the built app (build/, served by
 * tests/serve.mjs as the bench serves it), through the graph page itself, with WebGPU where the
 * browser has it (the WGSL backward passes). The page's own export is what lands in `--out`
 * (Neuronpedia's graph JSON, `input` and `bias` on every node), unpruned unless `--prune` is given.
 * The Node path (attribute-run.ts) runs the same TypeScript on the CPU, for files on disk.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { UsageError } from './attribute-run';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..');

export const browserUsage =
	'usage: npm run attribute -- --browser --prompt TEXT --out graph.json [--model stories260K] [--transcoders default|DIR] ' +
	'[--prune] [--node-threshold 0.8] [--edge-threshold 0.98] [--hub URL] [--port 4188] [--backend webgpu|wasm]';

const valued = ['--prompt', '--model', '--out', '--transcoders', '--node-threshold', '--edge-threshold', '--hub', '--port', '--backend'];
const flags = ['--prune', '--browser'];

function parse(argv: string[]): Record<string, string> {
	const a: Record<string, string> = {};
	for (let i = 0; i < argv.length; i++) {
		const k = argv[i];
		if (flags.includes(k)) a[k] = 'yes';
		else if (valued.includes(k)) {
			if (i + 1 >= argv.length) throw new UsageError(`${k} needs a value.`);
			a[k] = argv[++i];
		} else throw new UsageError(`unknown argument ${k}.`);
	}
	if (!a['--prompt']) throw new UsageError('--prompt is required.');
	if (!a['--out']) throw new UsageError('--out is required.');
	const t = a['--transcoders'] ?? 'default';
	if (t !== 'default' && !existsSync(t)) throw new UsageError(`--transcoders: no folder ${t}.`);
	return a;
}

/** Starts tests/serve.mjs on `port` and resolves once it answers. */
async function serve(port: number): Promise<ChildProcess> {
	const child = spawn(process.execPath, [join(repo, 'tests', 'serve.mjs'), '--port', String(port)], {
		stdio: ['ignore', 'ignore', 'inherit']
	});
	for (let i = 0; i < 600; i++) {
		if (child.exitCode !== null)
			throw new Error(`the app server (tests/serve.mjs) exited with ${child.exitCode}; is port ${port} free? (--port)`);
		try {
			if ((await fetch(`http://127.0.0.1:${port}/`)).ok) return child;
		} catch (e) {
			if (process.env.LOUPE_DEBUG) console.error(e);
		}
		await new Promise((r) => setTimeout(r, 100));
	}
	child.kill();
	throw new Error('the app server did not answer within 60 s');
}

export interface BrowserAttributeSummary {
	out: string;
	nodes: number;
	links: number;
	backend: string;
	ms: number;
}

export async function runAttributeInBrowser(argv: string[]): Promise<BrowserAttributeSummary> {
	const a = parse(argv);
	if (!existsSync(join(repo, 'build', 'index.html'))) throw new Error('There is no build of the app: run `npm run build` first.');
	const port = Number(a['--port'] ?? 4188);
	const server = await serve(port);
	const browser = await chromium.launch({
		executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
		args: ['--enable-unsafe-webgpu', '--no-sandbox', '--disable-background-networking', '--disable-component-update', '--no-first-run']
	});
	try {
		const page = await browser.newPage({ acceptDownloads: true });
		const errors: string[] = [];
		page.on('pageerror', (e) => errors.push(e.message));
		const q = new URLSearchParams({ prompt: a['--prompt'], backend: a['--backend'] ?? 'webgpu' });
		if (a['--model']) q.set('model', a['--model']);
		if (a['--hub']) q.set('hub', a['--hub']);
		if (a['--node-threshold']) q.set('nt', a['--node-threshold']);
		if (a['--edge-threshold']) q.set('et', a['--edge-threshold']);
		await page.goto(`http://127.0.0.1:${port}/graph?${q}`);
		const banner = page.getByTestId('error-banner');
		const failed = async () => ((await banner.count()) ? ((await banner.first().textContent()) ?? '').trim() : '');
		// The model, then the transcoders (the app's own, or the folder given, as a person picks it).
		const t = a['--transcoders'] ?? 'default';
		if (t !== 'default') await page.getByTestId('transcoder-folder').setInputFiles(resolve(t));
		const build = page.getByTestId('graph-build');
		const t0 = Date.now();
		while (!(await build.isEnabled())) {
			const why = await failed();
			if (why) throw new Error(`the graph page says: ${why}`);
			if (Date.now() - t0 > 600_000) throw new Error('the model and transcoders did not load within 10 minutes');
			await page.waitForTimeout(250);
		}
		const backend = (await page.getByTestId('status-line').getAttribute('data-backend')) ?? 'unknown';
		const started = Date.now();
		await build.click();
		const svg = page.getByTestId('graph-svg');
		while (!(await svg.isVisible())) {
			const why = await failed();
			if (why) throw new Error(`the graph page says: ${why}`);
			const p = (
				await page
					.getByTestId('graph-progress')
					.textContent()
					.catch(() => null)
			)?.trim();
			if (p) process.stderr.write(`\r${p.slice(0, 100).padEnd(100)}`);
			await page.waitForTimeout(250);
		}
		process.stderr.write('\n');
		const ms = Date.now() - started;
		const [download] = await Promise.all([
			page.waitForEvent('download'),
			page.getByTestId(a['--prune'] ? 'graph-export' : 'graph-export-unpruned').click()
		]);
		const text = readFileSync((await download.path())!, 'utf8');
		const g = JSON.parse(text) as { nodes: unknown[]; links: unknown[] };
		writeFileSync(a['--out'], text);
		if (errors.length) process.stderr.write(`attribute: the page reported: ${errors.join('; ')}\n`);
		return { out: a['--out'], nodes: g.nodes.length, links: g.links.length, backend, ms };
	} finally {
		await browser.close();
		server.kill();
	}
}

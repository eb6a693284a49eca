/**
 * `npm run attribute -- --prompt TEXT --model M.bin --tokenizer tok.bin --out graph.json [--prune] …`
 * `npm run attribute -- --browser --prompt TEXT [--model ID] [--transcoders default|DIR] --out graph.json`
 *
 * Builds an attribution graph (Neuronpedia's graph JSON, `input` and `bias` on every node) and
 * prints a one-line JSON summary. Exits 2 on bad arguments (with the usage), 1 when it cannot.
 * The work is in attribute-run.ts.
 */
import { register } from 'node:module';

// The engine's GPU backend carries its WGSL kernels as Vite `?raw` imports: teach Node to load them
// before the engine is imported (hence the dynamic import), as generate.ts does.
register('./raw-import.ts', import.meta.url);
const { runAttribute, usage, UsageError } = await import('./attribute-run');
// --browser: the built app in headless Chromium builds it (attribute-browser.ts); otherwise Node.
const inBrowser = process.argv.includes('--browser');

try {
	const argv = process.argv.slice(2);
	const run = inBrowser ? (await import('./attribute-browser')).runAttributeInBrowser : runAttribute;
	console.log(JSON.stringify(await run(argv)));
} catch (e) {
	if (e instanceof UsageError) {
		console.error(`attribute: ${e.message}\n${inBrowser ? (await import('./attribute-browser')).browserUsage : usage}`);
		process.exit(2);
	}
	console.error(`attribute: ${(e as Error).message}`);
	process.exit(1);
}

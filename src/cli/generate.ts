/**
 * `npm run generate -- model.onnx --ids 1,2,3 --steps N [--cut HOOKS] [--temperature T --seed S]
 * [--top-k K] [--top-p P] [--freq-penalty F] [--stop ID,…]`
 *
 * Generates N tokens after the given token ids with an exported decoder, through the app's own
 * runner, decoder IO and sampler (onnxruntime-web, wasm, in Node), and prints `{"ids":[…]}`.
 * Temperature 0 (the default) is greedy. External data is read from beside the graph by the names
 * the graph gives. Exits 1 with the reason on stderr when it cannot (2 for bad arguments).
 * The work is in generate-run.ts.
 */
import { register } from 'node:module';

// The engine's logits module carries its WGSL kernel as a Vite `?raw` import: teach Node to load it
// (before the engine is imported, hence the dynamic import).
register('./raw-import.ts', import.meta.url);
const { runGenerate, usage, UsageError } = await import('./generate-run');

const args = process.argv.slice(2);
try {
	const { ids, stopReason } = await runGenerate(args);
	if (stopReason === 'context_full') console.error("generate: stopped early: the model's context is full.");
	if (stopReason === 'end_of_text') console.error('generate: stopped at a --stop token.');
	console.log(JSON.stringify({ ids }));
} catch (e) {
	if (e instanceof UsageError) {
		console.error(`generate: ${e.message}\n${usage}`);
		process.exit(2);
	}
	const file = args.find((x, i) => !x.startsWith('--') && !args[i - 1]?.startsWith('--'));
	console.error(`generate: ${file ?? ''}: ${(e as Error).message}`);
	process.exit(1);
}

/**
 * `npm run hooks -- path/to/model.onnx [--verify] [--cut blocks.2.hook_resid_post,…]`
 *
 * Prints the hook manifest of an exported decoder as JSON: the architecture guess, d_model, the
 * tensor behind each `blocks.{L}.hook_resid_pre/post`, the KV-cache pairing, and the segments of a
 * cut (by default at every hook point). Exits 1 with the reason when the residual stream cannot be
 * traced.
 *
 * `--verify` also runs the original and the segmented model in onnxruntime (wasm, in Node): cached
 * logits against one uncached forward (`verify.cachedVsUncached`), segmented against original,
 * residuals at each cut, an added vector (see src/lib/engine/model/onnx/verify.ts).
 *
 * Output format: stdout is always ONE JSON object, `{ "file", …manifest, "verify" }`, written in two
 * parts: the manifest fields first (so they are on screen before a long verification starts), then
 * `"verify": {…}}` when it ends. When verifying fails, `verify` is `{ "failed": true, "step", "error" }`,
 * the reason also goes to stderr (`hooks: FILE: verify failed at "STEP": …`) and the exit status is 1.
 * Progress lines (`hooks: verifying: STEP`) go to stderr.
 */
import { readFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-web';
import { cutExportedDecoder, hookManifest, openExportedDecoder } from '../lib/engine/model/onnx/hook-manifest';
import { VerifyError, verifySurgery } from '../lib/engine/model/onnx/verify';
import { allHookNames } from '../lib/engine/model/hooks';
import { externalDataFiles } from '../lib/engine/model/onnx/external-data';

const args = process.argv.slice(2);
const file = args.find((a) => !a.startsWith('--') && !args[args.indexOf(a) - 1]?.startsWith('--cut'));
const verify = args.includes('--verify');
const cutArg = args.indexOf('--cut');
if (!file) {
	console.error('usage: npm run hooks -- path/to/model.onnx [--verify] [--cut blocks.L.hook_resid_post,…]');
	process.exit(2);
}

const reason = (e: unknown) => (e instanceof Error ? e.message : String(e));
const indent = (json: string) => json.replace(/\n/g, '\n  ');

let bytes: Uint8Array;
let head: string;
let graphFiles: string[];
try {
	bytes = new Uint8Array(readFileSync(file));
	const decoder = openExportedDecoder(bytes);
	const hooks = cutArg >= 0 ? args[cutArg + 1].split(',') : allHookNames(decoder.trace.nLayers);
	const manifest = hookManifest(decoder, cutExportedDecoder(decoder, hooks));
	head = JSON.stringify({ file, ...manifest }, null, 2);
	graphFiles = externalDataFiles(decoder.graph);
} catch (e) {
	console.error(`hooks: ${file}: ${reason(e)}`);
	process.exit(1);
}

if (!verify) console.log(head);
else {
	// The manifest's fields now, the closing `"verify": …}` after verifying.
	process.stdout.write(`${head.slice(0, -2)},\n  "verify": `);
	let status = 0;
	let result: unknown;
	try {
		ort.env.wasm.numThreads = 1;
		// Every failure comes back as an exception that verify reports with its step; onnxruntime's own
		// log lines would also print for a chunked prefill a graph legitimately refuses.
		ort.env.logLevel = 'fatal';
		const externalData = graphFiles.map((path) => {
			const full = join(dirname(file), path);
			if (!existsSync(full))
				throw new VerifyError('read the external data', `The graph keeps its weights in "${path}", which is not beside it.`);
			return { path, data: new Uint8Array(readFileSync(full)) };
		});
		result = await verifySurgery(ort, bytes, { externalData, onPhase: (step) => console.error(`hooks: verifying: ${step}`) });
	} catch (e) {
		const step = e instanceof VerifyError ? e.step : 'verify';
		const error = e instanceof VerifyError ? e.reason : reason(e);
		result = { failed: true, step, error };
		console.error(`hooks: ${file}: verify failed at "${step}": ${error}`);
		status = 1;
	}
	process.stdout.write(`${indent(JSON.stringify(result, null, 2))}\n}\n`);
	process.exitCode = status;
}

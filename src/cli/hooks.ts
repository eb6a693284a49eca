/**
 * `npm run hooks -- path/to/model.onnx [--verify] [--cut blocks.2.hook_resid_post,…]`
 *
 * Prints the hook manifest of an exported decoder as JSON: the architecture guess, d_model, the
 * tensor behind each `blocks.{L}.hook_resid_pre/post`, and the segments of a cut (by default at
 * every hook point). Exits 1 with the reason when the residual stream cannot be traced.
 * `--verify` also runs the original and the segmented model in onnxruntime (wasm, in Node) and
 * prints the max abs differences (see src/lib/engine/model/onnx/verify.ts).
 */
import { readFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-web';
import { cutExportedDecoder, hookManifest, openExportedDecoder } from '../lib/engine/model/onnx/hook-manifest';
import { verifySurgery } from '../lib/engine/model/onnx/verify';
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

try {
	const bytes = new Uint8Array(readFileSync(file));
	const decoder = openExportedDecoder(bytes);
	const hooks = cutArg >= 0 ? args[cutArg + 1].split(',') : allHookNames(decoder.trace.nLayers);
	const manifest = hookManifest(decoder, cutExportedDecoder(decoder, hooks));
	const out: Record<string, unknown> = { file, ...manifest };
	if (verify) {
		ort.env.wasm.numThreads = 1;
		ort.env.logLevel = 'error';
		const externalData = externalDataFiles(decoder.graph).map((path) => {
			const full = join(dirname(file), path);
			if (!existsSync(full)) throw new Error(`The graph keeps its weights in "${path}", which is not beside it.`);
			return { path, data: new Uint8Array(readFileSync(full)) };
		});
		out.verify = await verifySurgery(ort, bytes, { externalData });
	}
	console.log(JSON.stringify(out, null, 2));
} catch (e) {
	console.error(`hooks: ${file}: ${(e as Error).message}`);
	process.exit(1);
}

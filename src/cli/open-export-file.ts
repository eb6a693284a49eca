/**
 * An exported decoder opened from disk the way the app opens one (`openExportGraph`: surgery,
 * external data by the names the graph gives, checked against its offsets), for the command-line
 * tools (`npm run generate`, `npm run attribute`). Weights are WeightFiles over the files on disk,
 * read as they are asked for, so a model is never in memory beside onnxruntime's copy of it; a
 * model too large for the wasm heap is refused before anything is read. `config.json` beside the
 * graph is read where there is one.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { openExportGraph } from '../lib/engine/model/hf/exported-model';
import { LoupeError } from '../lib/engine/errors';
import { nodeWeightFile } from './node-weight-file';

export async function openExportFile(path: string) {
	const file = resolve(path);
	if (!existsSync(file)) throw new Error(`There is no file ${file}.`);
	const dir = dirname(file);
	const configPath = join(dir, 'config.json');
	const config = existsSync(configPath) ? JSON.parse(readFileSync(configPath, 'utf8')) : {};
	const graph = readFileSync(file);
	return openExportGraph(
		new Uint8Array(graph.buffer, graph.byteOffset, graph.byteLength),
		path,
		async (name) => {
			const full = join(dir, name);
			if (!existsSync(full))
				throw new LoupeError(
					'not-found',
					`The graph keeps its weights in "${name}", which is not beside it (looked for ${full}).`,
					`Put ${name} next to the .onnx file.`
				);
			return nodeWeightFile(full, name);
		},
		config,
		// Weights inside the graph are read from the file too: the parsed bytes go once it is open.
		{ backend: 'wasm', graphWeights: nodeWeightFile(file, path) }
	);
}

/**
 * A weights file on disk as a WeightFile (onnx/weight-file.ts) for Node (`npm run generate`, the
 * real-size benchmark, tests): its size from the file system, each range read when it is asked for,
 * so a process never holds the whole file beside onnxruntime's copy of the weights.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { WeightFile } from '../lib/engine/model/onnx/weight-file';

export function nodeWeightFile(path: string, name = path): WeightFile {
	const fd = openSync(path, 'r');
	let size: number;
	try {
		size = fstatSync(fd).size;
	} finally {
		closeSync(fd);
	}
	return new WeightFile(name, size, (start, end) => {
		const out = new Uint8Array(end - start);
		// Opened per read: nothing stays open between sessions, and a file replaced since is read as it is now.
		const fd = openSync(path, 'r');
		try {
			for (let done = 0; done < out.byteLength;) {
				const n = readSync(fd, out, done, out.byteLength - done, start + done);
				if (n === 0) throw new Error(`${name} ended at byte ${start + done}, before byte ${end}`);
				done += n;
			}
		} finally {
			closeSync(fd);
		}
		return out;
	});
}

/**
 * Files with the folder path they came in, from a drop (folders walked through the entries API)
 * or a picker (`webkitRelativePath` of a folder picker): transcoders come one folder per layer,
 * and every SAELens folder holds a cfg.json, so the folder is what tells them apart. Paths travel
 * beside the Files because a File's webkitRelativePath does not survive the trip to the worker.
 */
import type { PathedFile } from '$lib/engine/attribution/transcoder-set';

export function pickedFiles(list: FileList | File[]): PathedFile[] {
	return Array.from(list, (f) => ({ path: f.webkitRelativePath || f.name, file: f }));
}

function readEntry(entry: FileSystemEntry, into: PathedFile[]): Promise<void> {
	if (entry.isFile)
		return new Promise((res, rej) =>
			(entry as FileSystemFileEntry).file((file) => {
				into.push({ path: entry.fullPath.replace(/^\//, ''), file });
				res();
			}, rej)
		);
	const reader = (entry as FileSystemDirectoryEntry).createReader();
	return new Promise((res, rej) => {
		const batch = () =>
			reader.readEntries(async (entries) => {
				if (!entries.length) return res();
				try {
					for (const e of entries) await readEntry(e, into);
					batch(); // readEntries gives at most 100 at a time
				} catch (err) {
					rej(err);
				}
			}, rej);
		batch();
	});
}

export async function droppedFiles(dt: DataTransfer): Promise<PathedFile[]> {
	const entries = Array.from(dt.items)
		.map((i) => i.webkitGetAsEntry?.())
		.filter((e): e is FileSystemEntry => !!e);
	if (!entries.length) return pickedFiles(dt.files);
	const out: PathedFile[] = [];
	for (const e of entries) await readEntry(e, out);
	return out;
}

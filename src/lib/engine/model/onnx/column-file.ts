/**
 * A MatMul weight's column pieces as one external-data file that exists only as a WeightFile: its
 * bytes are the pieces one after the other, each [rows, its columns] row-major, read on demand
 * from the weights file that holds the whole [rows, columns] matrix (one read per row of a piece,
 * just the bytes of that piece). weight-pieces.ts writes the graph side; the runner and `--verify`
 * hand these files to onnxruntime beside the real ones (`withColumnFiles`).
 *
 * Why a file and not ranges of the real one: a column piece of a row-major matrix is not one byte
 * range, and onnxruntime reads an initializer as one range of one file.
 */
import { WeightFile } from './weight-file';

export interface ColumnFile {
	/** The name onnxruntime knows this file by (the pieces' `location`). */
	path: string;
	/** The weights file holding the whole matrix, and the matrix's offset in it. */
	source: string;
	offset: number;
	rows: number;
	columns: number;
	/** Bytes per element. */
	width: number;
	/** Columns of each piece, in order. */
	pieces: number[];
}

type Files = { path: string; data: Uint8Array }[];

/** Byte offset of each piece in the column file, and the file's size last. */
export function pieceOffsets(c: ColumnFile): number[] {
	const out = [0];
	for (const n of c.pieces) out.push(out[out.length - 1] + c.rows * n * c.width);
	return out;
}

/** `files` and, after them, each column file as a WeightFile over the file it reads from. */
export function withColumnFiles(files: Files | undefined, columnFiles: ColumnFile[]): Files | undefined {
	if (!columnFiles.length) return files;
	const byPath = new Map<string, ColumnFile>(columnFiles.map((c) => [c.path, c]));
	return [...(files ?? []), ...[...byPath.values()].map((c) => ({ path: c.path, data: columnFileData(c, files ?? []) }))];
}

function columnFileData(c: ColumnFile, files: Files): WeightFile {
	const source = files.find((f) => f.path === c.source)?.data;
	const starts = pieceOffsets(c);
	const firstColumn = [0];
	for (const n of c.pieces) firstColumn.push(firstColumn[firstColumn.length - 1] + n);
	return new WeightFile(c.path, starts[starts.length - 1], (s, e) => {
		if (!source) throw new Error(`${c.path} reads from "${c.source}", which was not handed over with the model's weights files.`);
		const out = new Uint8Array(e - s);
		let piece = 0;
		for (let at = s; at < e;) {
			while (starts[piece + 1] <= at) piece++;
			const rowBytes = c.pieces[piece] * c.width;
			const local = at - starts[piece];
			const row = Math.floor(local / rowBytes);
			const within = local % rowBytes;
			const take = Math.min(rowBytes - within, e - at);
			const from = c.offset + (row * c.columns + firstColumn[piece]) * c.width + within;
			out.set(source.subarray(from, from + take), at - s);
			at += take;
		}
		return out;
	});
}

/**
 * Checks external-data files against the graph before onnxruntime sees them: every initializer
 * stored outside the graph names a file, an offset and a length, and a file that ends before the
 * last of those is truncated or belongs to another export. onnxruntime would fail on it with an
 * opaque message (or read past the end), so Loupe says which file, how long it is and how long the
 * graph needs it to be.
 */
import { LoupeError } from '../../errors';
import { DataType, type GraphIndex } from './graph';

const elementBytes: Record<number, number> = {
	[DataType.FLOAT]: 4,
	[DataType.FLOAT16]: 2,
	[DataType.BFLOAT16]: 2,
	[DataType.DOUBLE]: 8,
	[DataType.INT64]: 8,
	[DataType.INT32]: 4,
	[DataType.INT16]: 2,
	[DataType.INT8]: 1,
	[DataType.UINT64]: 8,
	[DataType.UINT32]: 4,
	[DataType.UINT16]: 2,
	[DataType.UINT8]: 1,
	[DataType.BOOL]: 1
};

/** For each file the graph reads weights from: how many bytes it must hold, and the initializer that reads furthest. */
export function externalDataExtents(g: GraphIndex): Map<string, { end: number; initializer: string }> {
	const out = new Map<string, { end: number; initializer: string }>();
	for (const t of g.initializers.values()) {
		if (t.dataLocation !== 1) continue;
		const entry = (k: string) => t.externalData?.find((e) => e.key === k)?.value;
		const location = entry('location');
		if (!location) continue;
		const offset = Number(entry('offset') ?? 0);
		// Without a length the tensor's own size is what onnxruntime reads.
		const count = (t.dims ?? []).reduce((a: number, d) => a * Number(d), 1);
		const length = entry('length') !== undefined ? Number(entry('length')) : count * (elementBytes[t.dataType ?? 0] ?? 0);
		const end = offset + length;
		if (end > (out.get(location)?.end ?? -1)) out.set(location, { end, initializer: t.name ?? '?' });
	}
	return out;
}

/** Throws a LoupeError ('truncated') naming the file when one is shorter than the graph's offsets. */
export function checkExternalData(g: GraphIndex, graphName: string, files: { path: string; data: Uint8Array }[]) {
	for (const [path, { end, initializer }] of externalDataExtents(g)) {
		const file = files.find((f) => f.path === path);
		if (!file) continue; // a missing file is the caller's to report: it knows where it looked
		if (file.data.byteLength < end)
			throw new LoupeError(
				'truncated',
				`${path} is ${file.data.byteLength} bytes, but ${graphName} reads weights up to byte ${end} of it (initializer "${initializer}"): the file is truncated or belongs to another export.`,
				`Download ${path} again, or choose the weights file that was exported with ${graphName}.`
			);
	}
}

/**
 * External data: large exports keep their weights in a sidecar file (`model.onnx_data`) that the
 * graph's initializers point into by (location, offset, length). Surgery never reads it; it only
 * needs to know which files to hand to onnxruntime's `externalData` option, and that the entries
 * pointing into them are well formed (the file's own length is checked against them later, in
 * external-data-extent.ts, once the files are read).
 */
import { LoupeError } from '../../errors';
import type { GraphIndex, TensorProto } from './graph';

const isByteCount = (v: string) => /^\d{1,16}$/.test(v) && Number.isSafeInteger(Number(v));

/**
 * A location the graph may name: a relative path inside the graph's folder. ONNX's checker refuses
 * absolute paths and ".." for the same reason (a graph must not point at files beside or above it).
 */
const isSafeLocation = (loc: string) => !/^([/\\]|[A-Za-z]:)/.test(loc) && !loc.split(/[/\\]/).includes('..');

/** Throws when an external initializer's entries are not a file name, an offset and a length in bytes. */
function checkEntries(t: TensorProto, graphName: string): string {
	const bad = (why: string) =>
		new LoupeError(
			'not-a-checkpoint',
			`${graphName} is damaged: initializer "${t.name ?? '?'}" keeps its weights in external data, but ${why}.`,
			'Download the export again, or choose another export of the model.'
		);
	const entry = (k: string) => t.externalData?.find((e) => e.key === k)?.value ?? undefined;
	const location = entry('location');
	if (!location) throw bad('it names no file (no "location" entry)');
	if (!isSafeLocation(location)) throw bad(`its location "${location.slice(0, 80)}" is not a file beside the graph`);
	for (const key of ['offset', 'length']) {
		const v = entry(key);
		if (v !== undefined && !isByteCount(v)) throw bad(`its ${key} "${v.slice(0, 40)}" is not a whole number of bytes`);
	}
	return location;
}

/** The sidecar files the graph's initializers refer to, by the path the graph names; each entry checked. */
export function externalDataFiles(g: GraphIndex, graphName = 'The graph'): string[] {
	const files = new Set<string>();
	for (const t of g.initializers.values()) if (t.dataLocation === 1) files.add(checkEntries(t, graphName));
	return [...files];
}

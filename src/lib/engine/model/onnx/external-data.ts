/**
 * External data: large exports keep their weights in a sidecar file (`model.onnx_data`) that the
 * graph's initializers point into by (location, offset, length). Surgery never reads it; it only
 * needs to know which files to hand to onnxruntime's `externalData` option.
 */
import type { GraphIndex } from './graph';

/** The sidecar files the graph's initializers refer to, by the path the graph names. */
export function externalDataFiles(g: GraphIndex): string[] {
	const files = new Set<string>();
	for (const t of g.initializers.values())
		if (t.dataLocation === 1) {
			const loc = t.externalData?.find((e) => e.key === 'location')?.value;
			if (loc) files.add(loc);
		}
	return [...files];
}

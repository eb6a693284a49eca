/**
 * Weights stored inside the graph file, read in place: after surgery, every large inline
 * initializer of the decoded graph is rewritten as an external-data reference into the graph
 * file's own bytes (location `GRAPH_WEIGHTS`, offset and length of its raw data there), and the
 * graph bytes are handed to onnxruntime as that external file.
 *
 * Why: an export with embedded weights otherwise costs three copies at once (the graph bytes,
 * segments re-encoded with their initializers inline, and onnxruntime's own parse of each segment
 * before it builds its tensors); read this way it costs what the same export with external data
 * costs: the file's bytes and onnxruntime's one copy of each tensor. protobufjs decodes `bytes`
 * fields as views into the buffer it parses, so the offsets are exact and nothing is copied.
 * onnxruntime-web copies each external tensor out of the mounted buffer by offset and length, so
 * the offsets need no alignment (unlike native onnxruntime's mmap, which wants them page-aligned).
 */
import type { GraphIndex } from './graph';

/** The reserved external-data name for the graph file's own bytes. */
export const GRAPH_WEIGHTS = 'loupe-graph-weights.bin';

/** Initializers smaller than this stay inline (shapes, scalars: not worth an external entry). */
const MIN_BYTES = 1024;

/**
 * Rewrites the graph's large inline initializers (those whose raw data is a view into `graphBytes`)
 * as references into `graphBytes` under `GRAPH_WEIGHTS`; edits `g`'s tensors in place. Returns the
 * external-data file to hand onnxruntime with the others, or null when nothing was rewritten.
 */
export function inlineWeightsAsExternal(g: GraphIndex, graphBytes: Uint8Array): { path: string; data: Uint8Array } | null {
	const location = (k: string, t: { externalData?: { key?: string | null; value?: string | null }[] | null }) =>
		t.externalData?.find((e) => e.key === k)?.value;
	// A graph that already names a file so (it cannot be one of Loupe's): leave its weights inline.
	for (const t of g.initializers.values()) if (t.dataLocation === 1 && location('location', t) === GRAPH_WEIGHTS) return null;
	let any = false;
	for (const t of g.initializers.values()) {
		if (t.dataLocation === 1) continue; // already external
		const raw = t.rawData;
		if (!raw || raw.buffer !== graphBytes.buffer) continue;
		// Small ones are copied out, so that nothing decoded keeps the graph's buffer alive: an engine
		// that drops the bytes once sessions are built can then free them.
		if (raw.byteLength < MIN_BYTES) {
			t.rawData = raw.slice();
			continue;
		}
		const offset = raw.byteOffset - graphBytes.byteOffset;
		if (offset < 0 || offset + raw.byteLength > graphBytes.byteLength) continue;
		t.dataLocation = 1;
		t.externalData = [
			{ key: 'location', value: GRAPH_WEIGHTS },
			{ key: 'offset', value: String(offset) },
			{ key: 'length', value: String(raw.byteLength) }
		];
		// Deleted, not emptied: protobufjs writes a field the object owns, even an empty one.
		delete t.rawData;
		any = true;
	}
	if (any) unpinAttributes(g, graphBytes.buffer);
	return any ? { path: GRAPH_WEIGHTS, data: graphBytes } : null;
}

/** Copies the bytes fields of node attributes (Constant values, string attributes) that are views into `buffer`. */
function unpinAttributes(g: GraphIndex, buffer: ArrayBufferLike) {
	// Only fields that hold bytes of the buffer: an unset field reads protobufjs's shared default, and
	// assigning it would make it a field the encoder writes.
	const pinned = (b: Uint8Array | null | undefined): b is Uint8Array => !!b?.length && b.buffer === buffer;
	const nodes = [...(g.model.graph?.node ?? []), ...(g.model.functions ?? []).flatMap((f) => f.node ?? [])];
	for (const n of nodes)
		for (const a of n.attribute ?? []) {
			if (pinned(a.s)) a.s = a.s.slice();
			if (a.strings?.some(pinned)) a.strings = a.strings.map((x) => (pinned(x) ? x.slice() : x));
			for (const t of [a.t, ...(a.tensors ?? [])]) if (t && pinned(t.rawData)) t.rawData = t.rawData.slice();
		}
}

// Fuzz: ONNX ModelProto and external data. decodeModel + GraphIndex on the bytes of a tiny decoder
// mutated (bytes and structure), and openExportGraph (the app's and the CLI's way in: parse, surgery,
// sidecars checked against the graph) on structural mutations and on external-data entries and
// sidecar lengths that lie. An accepted externalized graph must have every initializer inside its
// sidecar, computed here from the mutated model (not by Loupe's extent code).
import { afterAll, describe, expect, it } from 'vitest';
import { buildTinyDecoder } from '../../../src/lib/engine/model/onnx/tiny-decoders';
import { decodeModel, encodeModel, GraphIndex, DataType } from '../../../src/lib/engine/model/onnx/graph';
import { externalDataFiles } from '../../../src/lib/engine/model/onnx/external-data';
import { openExportGraph } from '../../../src/lib/engine/model/hf/exported-model';
import { LoupeError } from '../../../src/lib/engine/errors';
import { fuzz, fuzzAsync, runCase, runCaseAsync, Tally, type Outcome } from '../../fuzz/harness';
import { mutatedBytes } from '../../fuzz/bytes';
import { externalized, mutatedExternal, mutatedModel } from '../../fuzz/onnx';

const parseTally = new Tally('ONNX ModelProto (decodeModel + GraphIndex)');
const openTally = new Tally('ONNX export (openExportGraph)');
const extTally = new Tally('ONNX external data (offsets vs the sidecar)');
afterAll(() => {
	for (const t of [parseTally, openTally, extTally]) console.log(t.line());
});

const tiny = new Uint8Array(buildTinyDecoder({ arch: 'llama', style: 'unfused', layers: 2, dModel: 8, heads: 2, vocab: 16 }));
const tinyFused = new Uint8Array(buildTinyDecoder({ arch: 'gpt2', style: 'fused', layers: 1, dModel: 8, heads: 2, vocab: 16 }));

const noSidecar = async (path: string): Promise<Uint8Array> => {
	throw new LoupeError('not-found', `${path} is not in this folder.`, 'Add the weights file.');
};

const elementBytes: Record<number, number> = { [DataType.FLOAT]: 4, [DataType.FLOAT16]: 2, [DataType.INT64]: 8, [DataType.INT32]: 4 };

describe('fuzz: ONNX', () => {
	it('the tiny decoders open (so the mutations start from graphs the surgery accepts)', async () => {
		for (const b of [tiny, tinyFused]) expect((await openExportGraph(b, 'model.onnx', noSidecar)).shape.nLayers).toBeGreaterThan(0);
		const { model, sidecar } = externalized(tiny);
		const files = externalDataFiles(new GraphIndex(model), 'model.onnx');
		expect(files).toEqual(['model.onnx_data']);
		expect(sidecar.length).toBeGreaterThan(1000);
	});

	it('decodeModel + GraphIndex on mutated bytes: truncation, flipped bytes, extension, random bytes', () => {
		fuzz(
			parseTally,
			mutatedBytes(tiny, []),
			({ bytes }) => runCase(bytes.length, () => new GraphIndex(decodeModel(bytes)), { plainError: true }),
			1500
		);
	});

	it('openExportGraph on structurally mutated graphs (rewired, dropped, duplicated nodes; dims, types, inputs)', async () => {
		for (const base of [tiny, tinyFused])
			await fuzzAsync(
				openTally,
				mutatedModel(base),
				({ bytes }) => runCaseAsync(() => openExportGraph(bytes, 'model.onnx', noSidecar)),
				250
			);
	});

	it('openExportGraph on mutated bytes', async () => {
		await fuzzAsync(
			openTally,
			mutatedBytes(tiny, []),
			({ bytes }) => runCaseAsync(() => openExportGraph(bytes, 'model.onnx', noSidecar)),
			250
		);
	});

	it('external data: offsets, lengths and locations that lie, sidecars cut short; an accepted graph fits its sidecar', async () => {
		await fuzzAsync(
			extTally,
			mutatedExternal(tiny),
			async ({ graph, model, sidecar }) => {
				const o: Outcome = await runCaseAsync(() =>
					openExportGraph(graph, 'model.onnx', async (p) => (p === 'model.onnx_data' ? sidecar : noSidecar(p)))
				);
				if (o.kind !== 'accepted') return o;
				// Accepted: every external initializer lies inside the sidecar (computed here from the entries).
				for (const t of model.graph!.initializer!) {
					if (t.dataLocation !== 1) continue;
					const e = (k: string) => t.externalData!.find((x) => x.key === k)?.value;
					const count = (t.dims ?? []).reduce((a: number, d) => a * Number(d), 1);
					const length = e('length') !== undefined ? Number(e('length')) : count * elementBytes[t.dataType!];
					const end = Number(e('offset') ?? 0) + length;
					if (!(end <= sidecar.length))
						return {
							kind: 'crash',
							why: `accepted, but initializer "${t.name}" reads bytes up to ${end} of a ${sidecar.length}-byte sidecar`
						};
				}
				return o;
			},
			600
		);
	});

	// Counterexamples fuzzing found (accepted before the fix: the extent check computed NaN or a
	// negative end and let them through), kept as plain cases.
	it.each([
		['offset', 'abc', /initializer ".*" keeps its weights in external data, but its offset "abc" is not a whole number of bytes/],
		['offset', '-64', /its offset "-64" is not a whole number of bytes/],
		['length', '1e3', /its length "1e3" is not a whole number of bytes/],
		['location', '../model.onnx_data', /its location "..\/model.onnx_data" is not a file beside the graph/],
		['location', '', /it names no file/]
	])('an external-data %s of "%s" is refused with a message naming the initializer', async (key, value, message) => {
		const { model, sidecar } = externalized(tiny);
		const t = model.graph!.initializer!.find((x) => x.dataLocation === 1)!;
		t.externalData!.find((x) => x.key === key)!.value = value;
		const open = openExportGraph(encodeModel(model), 'model.onnx', async () => sidecar);
		await expect(open).rejects.toThrow(LoupeError);
		await expect(openExportGraph(encodeModel(model), 'model.onnx', async () => sidecar)).rejects.toThrow(message);
	});

	it('a sidecar one byte short is refused as truncated, naming the file and the initializer', async () => {
		const { model, sidecar } = externalized(tiny);
		await expect(openExportGraph(encodeModel(model), 'model.onnx', async () => sidecar.slice(0, -1))).rejects.toThrow(
			new RegExp(`model.onnx_data is ${sidecar.length - 1} bytes, but model.onnx reads weights up to byte ${sidecar.length} of it`)
		);
	});
});

// The other llama2.c layouts, written here byte by byte as karpathy/llama2.c export.py writes them
// (legacy_export and version1_export), from the stories260K weights.
import { describe, expect, it } from 'vitest';
import { readLlama2cCheckpoint, type LlamaWeights } from '../../src/lib/engine/model/llama2c/checkpoint';
import { ReferenceLlama } from '../../src/lib/engine/model/llama2c/reference-forward';
import { readArrayBuffer, stories260KDir } from '../fixtures';

const legacy = readLlama2cCheckpoint(readArrayBuffer(`${stories260KDir}/stories260K.bin`));
const c = legacy.config;

function concat(parts: (ArrayBuffer | Float32Array)[]): ArrayBuffer {
	const bytes = parts.map((p) => (p instanceof Float32Array ? new Uint8Array(p.buffer, p.byteOffset, p.byteLength) : new Uint8Array(p)));
	const out = new Uint8Array(bytes.reduce((n, b) => n + b.length, 0));
	let o = 0;
	for (const b of bytes) out.set(b, (o += b.length) - b.length);
	return out.buffer;
}

function version1(w: LlamaWeights, shared: boolean, version = 1): ArrayBuffer {
	const header = new ArrayBuffer(256);
	const dv = new DataView(header);
	dv.setUint32(0, 0x616b3432, true);
	dv.setInt32(4, version, true);
	[c.dim, c.hiddenDim, c.nLayers, c.nHeads, c.nKvHeads, c.vocabSize, c.seqLen].forEach((v, i) => dv.setInt32(8 + 4 * i, v, true));
	dv.setUint8(36, shared ? 1 : 0);
	const L = w.layers;
	return concat([
		header,
		...L.map((l) => l.rmsAtt),
		...L.map((l) => l.rmsFfn),
		w.rmsFinal,
		w.tokenEmbedding,
		...L.map((l) => l.wq),
		...L.map((l) => l.wk),
		...L.map((l) => l.wv),
		...L.map((l) => l.wo),
		...L.map((l) => l.w1),
		...L.map((l) => l.w2),
		...L.map((l) => l.w3),
		...(shared ? [] : [w.classifier])
	]);
}

function legacyUnshared(w: LlamaWeights): ArrayBuffer {
	const header = new Int32Array([c.dim, c.hiddenDim, c.nLayers, c.nHeads, c.nKvHeads, -c.vocabSize, c.seqLen]);
	const L = w.layers;
	const freqCis = new Float32Array(c.seqLen * (c.dim / c.nHeads)); // real + imag, ignored by readers
	return concat([
		header.buffer,
		w.tokenEmbedding,
		...L.map((l) => l.rmsAtt),
		...L.map((l) => l.wq),
		...L.map((l) => l.wk),
		...L.map((l) => l.wv),
		...L.map((l) => l.wo),
		...L.map((l) => l.rmsFfn),
		...L.map((l) => l.w1),
		...L.map((l) => l.w2),
		...L.map((l) => l.w3),
		w.rmsFinal,
		freqCis,
		w.classifier
	]);
}

const logitsOf = (w: LlamaWeights) => {
	const ref = new ReferenceLlama(w);
	return [1, 403, 407, 261].map((t) => ref.step(t));
};

describe('llama2.c checkpoint layouts', () => {
	it('version 1 (magic "ak42", 256-byte header) reads to the same weights as the legacy file', () => {
		const v1 = readLlama2cCheckpoint(version1(legacy, true));
		expect(v1.config).toEqual(c);
		expect(logitsOf(v1)).toEqual(logitsOf(legacy));
	});

	it('a separate classifier is read, in version 1 and in the legacy layout (negative vocab_size)', () => {
		const cls = legacy.tokenEmbedding.map((v, i) => v * (1 + (i % 7) / 10));
		const withCls = { ...legacy, config: { ...c, sharedClassifier: false }, classifier: cls };
		for (const buf of [version1(withCls, false), legacyUnshared(withCls)]) {
			const w = readLlama2cCheckpoint(buf);
			expect(w.config.sharedClassifier).toBe(false);
			expect(w.classifier).toEqual(cls);
			expect(w.tokenEmbedding).toEqual(legacy.tokenEmbedding);
		}
	});

	it('version 2 (int8) is refused with what to do instead', () => {
		expect(() => readLlama2cCheckpoint(version1(legacy, true, 2), 'q80.bin')).toThrow(
			/q80\.bin is a llama2\.c checkpoint of version 2.*int8/
		);
	});

	it('a file with bytes past what its header describes is refused', () => {
		const padded = concat([readArrayBuffer(`${stories260KDir}/stories260K.bin`), new Float32Array(8)]);
		expect(() => readLlama2cCheckpoint(padded, 'x.bin')).toThrow(/x\.bin has 32 bytes more than its header/);
	});
});

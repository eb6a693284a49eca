// Fuzz: llama2.c checkpoints (legacy and version 1, written here by export.py's layout, and the real
// stories260K.bin) and tokenizers (the real tok512.bin): every header int, every token's length and
// score mutated, the files cut short, extended and replaced by random bytes; the tokenizer also with
// vocabulary sizes that disagree with the file, and accepted tokenizers run on random text.
import { afterAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { readLlama2cCheckpoint } from '../../../src/lib/engine/model/llama2c/checkpoint';
import { Llama2cTokenizer } from '../../../src/lib/engine/model/llama2c/tokenizer';
import { LoupeError } from '../../../src/lib/engine/errors';
import { stories260KDir } from '../../fixtures';
import { fuzz, runCase, Tally } from '../../fuzz/harness';
import { edgeInt, mutatedBytes, toBuffer } from '../../fuzz/bytes';
import { llama2cFile, tinyLlama, tokenizerFields } from '../../fuzz/files';

const ckptTally = new Tally('llama2.c checkpoint');
const tokTally = new Tally('llama2.c tokenizer (tok512.bin)');
afterAll(() => {
	console.log(ckptTally.line());
	console.log(tokTally.line());
});

const tok512 = new Uint8Array(readFileSync(resolve(stories260KDir, 'tok512.bin')));
const stories = new Uint8Array(readFileSync(resolve(stories260KDir, 'stories260K.bin')));
const legacy = llama2cFile(tinyLlama, true);
const v1 = llama2cFile({ ...tinyLlama, shared: true }, false);

describe('fuzz: llama2.c checkpoint', () => {
	it('the valid files read back', () => {
		expect(readLlama2cCheckpoint(toBuffer(legacy.bytes)).config).toMatchObject({ dim: 8, vocabSize: 10, sharedClassifier: false });
		expect(readLlama2cCheckpoint(toBuffer(v1.bytes)).config).toMatchObject({ dim: 8, nKvHeads: 1, sharedClassifier: true });
	});

	for (const [name, f] of [
		['legacy', legacy],
		['version 1', v1]
	] as const)
		it(`mutated ${name} checkpoints: every header field, truncation, extension, random bytes`, () => {
			fuzz(
				ckptTally,
				mutatedBytes(f.bytes, f.fields),
				({ bytes }) => runCase(bytes.length, () => readLlama2cCheckpoint(toBuffer(bytes), 'model.bin')),
				1000
			);
		});

	it('the real stories260K.bin with one header field changed', () => {
		const fields = llama2cFile(tinyLlama, true).fields; // legacy header: the same seven ints at the same places
		const arb = fc.tuple(fc.constantFrom(...fields), edgeInt(stories.length));
		fuzz(
			ckptTally,
			arb,
			([f, v]) => {
				const b = stories.slice();
				new DataView(b.buffer).setInt32(f.at, v | 0, true);
				return runCase(b.length, () => readLlama2cCheckpoint(toBuffer(b), 'stories260K.bin'));
			},
			60
		);
	});
});

describe('fuzz: llama2.c checkpoint counterexamples', () => {
	// Found by the long run (a RangeError from DataView before the fix): an "ak42" file cut between
	// the legacy header's 28 bytes and byte 37, where version 1 keeps shared_classifier.
	it.each([28, 32, 36, 255])('a version-1 checkpoint cut to %i bytes is refused as truncated', (n) => {
		const o = runCase(n, () => readLlama2cCheckpoint(toBuffer(v1.bytes.slice(0, n)), 'model.bin'));
		expect(o).toEqual({
			kind: 'refused',
			message: expect.stringContaining(`model.bin starts like a llama2.c version-1 checkpoint ("ak42") but is only ${n} bytes`)
		});
	});
});

describe('fuzz: llama2.c tokenizer', () => {
	it('tok512.bin reads back with 512 tokens', () => {
		expect(new Llama2cTokenizer(toBuffer(tok512), 512).vocabSize).toBe(512);
	});

	it('mutated tok512.bin: max_token_length, each score and length, truncation, extension, random bytes; accepted ones encode and decode random text', () => {
		const arb = fc.tuple(mutatedBytes(tok512, tokenizerFields(tok512, 512)), fc.string({ maxLength: 24, unit: 'binary' }));
		fuzz(
			tokTally,
			arb,
			([{ bytes }, text]) =>
				runCase(bytes.length, () => {
					const t = new Llama2cTokenizer(toBuffer(bytes), 512, 'tok512.bin');
					t.decode(t.encode(text));
					for (const id of [0, 1, 2, 511, 512, -1]) t.pieceText(id);
				}),
			700
		);
	});

	it('vocabulary sizes that disagree with the file (the model header says one thing, the tokenizer another)', () => {
		fuzz(
			tokTally,
			edgeInt(512),
			(vocab) => runCase(tok512.length, () => new Llama2cTokenizer(toBuffer(tok512), vocab, 'tok512.bin'), { budget: 4 * tok512.length }),
			200
		);
	});

	// Counterexamples fuzzing found, kept as plain cases.
	it('a vocabulary of 16 million tokens for a 6 kB file is refused before its tables are allocated', () => {
		const o = runCase(tok512.length, () => new Llama2cTokenizer(toBuffer(tok512), 2 ** 24 - 1, 'tok512.bin'), {
			budget: 4 * tok512.length
		});
		expect(o).toEqual({ kind: 'refused', message: expect.stringContaining('6,227 bytes cannot hold 16,777,215 tokens') });
	});

	it.each([-1, 0, 2.5, NaN])('a vocabulary size of %s is refused with a message', (vocab) => {
		expect(() => new Llama2cTokenizer(toBuffer(tok512), vocab, 'tok512.bin')).toThrow(LoupeError);
		expect(() => new Llama2cTokenizer(toBuffer(tok512), vocab, 'tok512.bin')).toThrow(
			/vocabulary size .* is not a positive number of tokens/
		);
	});
});

// Fuzz: safetensors (SAELens weights, Gemma Scope 2 params, sparsity). A small valid file written
// here from the spec, then its header length, its JSON header (dtype, shape, data_offsets, one value
// at a time) and its bytes mutated; every case is accepted or refused with Loupe's message, fast,
// and without allocating what the header claims before checking it against the file.
import { afterAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { readSafetensors } from '../../../src/lib/engine/sae/formats/safetensors';
import { LoupeError } from '../../../src/lib/engine/errors';
import { fuzz, runCase, Tally } from '../../fuzz/harness';
import { mutatedBytes, toBuffer } from '../../fuzz/bytes';
import { mutatedJson } from '../../fuzz/json';
import { safetensorsFile, smallSafetensors } from '../../fuzz/files';

const tally = new Tally('safetensors');
afterAll(() => console.log(tally.line()));

const { header, data } = smallSafetensors();
const valid = safetensorsFile(header, data);
const parse = (b: Uint8Array) => () => readSafetensors(toBuffer(b), 'sae_weights.safetensors');

describe('fuzz: safetensors', () => {
	it('the valid file reads back (so the mutations start from something the parser accepts)', () => {
		const t = readSafetensors(toBuffer(valid), 'x');
		expect([...t.get('W_enc')!.data]).toEqual([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5]);
		expect([...t.get('b_dec')!.data]).toEqual([1, -2]);
		expect([...t.get('threshold')!.data]).toEqual([1, 1, 1]);
	});

	it('mutated JSON headers (dtype, shape, data_offsets, keys), with a true length field', () => {
		const arb = mutatedJson(header, [
			'toString',
			'F32',
			'I64',
			'constructor',
			[0, 1e10],
			[-8, 16],
			[24, 0],
			[1e10, 1e10 + 24],
			[2 ** 31, 2 ** 31],
			[0.5, 24.5],
			[-1, 5]
		]);
		fuzz(
			tally,
			arb,
			({ text }) => {
				const b = safetensorsFile(null, data, text);
				return runCase(b.length, parse(b));
			},
			1500
		);
	});

	it('mutated bytes: the u64 header length, truncation, extension, flipped bytes, random files', () => {
		fuzz(
			tally,
			mutatedBytes(valid, [
				{ name: 'header length', at: 0, kind: 'u64' },
				{ name: 'header length (high word)', at: 4, kind: 'u32' }
			]),
			({ bytes }) => runCase(bytes.length, parse(bytes)),
			1000
		);
	});

	it('headers whose sizes agree with each other but not with the file (a tensor of 10 GB in a 200-byte file)', () => {
		const arb = fc.record({
			dims: fc.array(fc.oneof(fc.integer({ min: 0, max: 2 ** 20 }), fc.constantFrom(2 ** 31, 2 ** 32, 50_000)), {
				minLength: 1,
				maxLength: 4
			}),
			dtype: fc.constantFrom('F32', 'F16', 'BF16', 'F64'),
			begin: fc.constantFrom(0, 8, 2 ** 31)
		});
		fuzz(
			tally,
			arb,
			({ dims, dtype, begin }) => {
				const bytes = { F32: 4, F16: 2, BF16: 2, F64: 8 }[dtype];
				const size = dims.reduce((a, d) => a * d, 1) * bytes;
				const b = safetensorsFile({ W: { dtype, shape: dims, data_offsets: [begin, begin + size] } }, new Uint8Array(16));
				return runCase(b.length, parse(b), { budget: 64 * 1024 });
			},
			300
		);
	});

	// The header-length field and the tensor sizes are checked against the file before anything is
	// read or allocated: no timing, but an allocation guard of 4 KiB (any buffer sized by the claim
	// would trip it) and the message that names the check.
	it('a header length of 10 GB is refused by the length check, before any allocation', () => {
		const b = valid.slice();
		new DataView(b.buffer).setBigUint64(0, 10_000_000_000n, true);
		const o = runCase(b.length, parse(b), { budget: 4096 });
		expect(o).toEqual({
			kind: 'refused',
			message: expect.stringContaining(`its header claims 10,000,000,000 bytes but the file has ${valid.length}`)
		});
	});

	it('a tensor declared 10 GB (shape [2500000000] F32, offsets [0, 1e10]) is refused as truncated, before any allocation', () => {
		const b = safetensorsFile({ W: { dtype: 'F32', shape: [2_500_000_000], data_offsets: [0, 10_000_000_000] } }, new Uint8Array(8));
		const o = runCase(b.length, parse(b), { budget: 4096 });
		expect(o).toEqual({
			kind: 'refused',
			message: expect.stringContaining('ends at byte 10,000,000,000 of the data, but there are only 8 (truncated)')
		});
	});

	// Counterexamples fuzzing found (each a crash before the fix), kept as plain cases.
	it.each([
		['a header that is JSON null', 'null', /is not a JSON object/],
		['a header that is an array', '[1]', /is not a JSON object/],
		['a tensor entry that is null', '{"W":null}', /tensor "W" is not an object/],
		['dtype "toString" (a key of every object)', '{"W":{"dtype":"toString","shape":[1],"data_offsets":[0,4]}}', /has dtype "toString"/],
		['a shape that is not a list', '{"W":{"dtype":"F32","shape":4,"data_offsets":[0,16]}}', /has shape 4, which is not a list of sizes/],
		[
			'negative dims whose product is positive',
			'{"W":{"dtype":"F32","shape":[-1,-1],"data_offsets":[0,4]}}',
			/has shape \[-1,-1\], which is not a list of sizes/
		],
		['data_offsets before the data', '{"W":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}', /data_offsets \[-4,0\]/],
		['data_offsets missing', '{"W":{"dtype":"F32","shape":[1]}}', /data_offsets undefined/],
		['fractional offsets', '{"W":{"dtype":"F32","shape":[1],"data_offsets":[0.5,4.5]}}', /data_offsets \[0.5,4.5\]/],
		[
			'a dtype that is an object with toString 1',
			'{"W":{"dtype":{"toString":1},"shape":[1],"data_offsets":[0,4]}}',
			/has dtype \{"toString":1\}/
		]
	])('%s is refused with a message', (_, text, message) => {
		const b = safetensorsFile(null, new Uint8Array(16), text);
		expect(() => parse(b)()).toThrow(LoupeError);
		expect(() => parse(b)()).toThrow(message);
	});
});

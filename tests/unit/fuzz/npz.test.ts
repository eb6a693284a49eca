// Fuzz: .npy arrays and .npz archives (Gemma Scope params.npz). Valid files written here (.npy by
// NumPy's format spec; the zip by fflate's writer, stored and deflated), then their length, count
// and offset fields mutated, cut short, extended and replaced by random bytes.
import { afterAll, describe, expect, it } from 'vitest';
import { zipSync } from 'fflate';
import { readNpy, readNpz } from '../../../src/lib/engine/sae/formats/npz';
import { LoupeError } from '../../../src/lib/engine/errors';
import { fuzz, runCase, Tally } from '../../fuzz/harness';
import { mutatedBytes, toBuffer } from '../../fuzz/bytes';
import { npyFile, zip64Claiming, zipFields } from '../../fuzz/files';

const npyTally = new Tally('npy');
const npzTally = new Tally('npz (zip)');
afterAll(() => {
	console.log(npyTally.line());
	console.log(npzTally.line());
});

const v1 = npyFile([2, 3], [1, 2, 3, 4, 5, 6]);
const v2 = npyFile([4], [1, -1, 0.5, 8], 2);
const members = { 'W_enc.npy': v1.bytes, 'b_dec.npy': v2.bytes, 'README.txt': new TextEncoder().encode('hello') };
const stored = zipSync(members, { level: 0 });
const deflated = zipSync(members, { level: 6 });
// Deflated data is budgeted by what the archive may legitimately expand to (deflate's limit is 1032:1).
const npzBudget = (n: number) => 1032 * 8 * n + (1 << 20);

describe('fuzz: npy', () => {
	it('the valid arrays read back', () => {
		expect(readNpy(v1.bytes, 'a.npy')).toMatchObject({ dtype: 'F32', shape: [2, 3] });
		expect([...readNpy(v2.bytes, 'b.npy').data]).toEqual([1, -1, 0.5, 8]);
	});

	for (const [name, f] of [
		['version 1', v1],
		['version 2', v2]
	] as const)
		it(`mutated ${name} files: magic, version, header length, truncation, extension, random bytes`, () => {
			fuzz(npyTally, mutatedBytes(f.bytes, f.fields), ({ bytes }) => runCase(bytes.length, () => readNpy(bytes, 'W_enc.npy')), 700);
		});

	it('mutated header dicts: shapes, dtypes and orders that lie', () => {
		const shapes = [
			'()',
			'(-1,)',
			'(-2, -3)',
			'(1e10,)',
			'(abc,)',
			'(2500000000,)',
			'(3, 2)',
			'(2, 3, 1)',
			'(0,)',
			'(,)',
			'(2.5, 2)',
			'(9007199254740993,)'
		];
		const descrs = ['<f4', '<f2', '<f8', '>f4', '<i4', "'", "<f4'", ''];
		for (const shape of shapes)
			for (const descr of descrs) {
				const f = npyFile([1], [0], 1, descr);
				const text = new TextDecoder().decode(f.bytes).replace('(1,)', shape);
				const bytes = new TextEncoder().encode(text); // the dict is ASCII; the length field may now be wrong: that is a case too
				npyTally.record(runCase(bytes.length, () => readNpy(bytes, 'x.npy'), { budget: 64 * 1024 }));
			}
		expect(npyTally.crashes).toEqual([]);
	});

	it.each([
		['shape (-1,): a negative size', "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", /shape \(-1,\) is not a list of sizes/],
		['shape (abc,)', "{'descr': '<f4', 'fortran_order': False, 'shape': (abc,), }", /shape \(abc,\) is not a list of sizes/],
		[
			'shape (-2, -3): negative sizes whose product is positive',
			"{'descr': '<f4', 'fortran_order': False, 'shape': (-2, -3), }",
			/shape \(-2, -3\) is not a list of sizes/
		]
	])('%s is refused with a message', (_, dict, message) => {
		const pad = dict + ' '.repeat((64 - ((10 + dict.length + 1) % 64)) % 64) + '\n';
		const bytes = new Uint8Array([
			0x93,
			...new TextEncoder().encode('NUMPY'),
			1,
			0,
			pad.length,
			0,
			...new TextEncoder().encode(pad),
			0,
			0,
			0,
			0
		]);
		expect(() => readNpy(bytes, 'x.npy')).toThrow(LoupeError);
		expect(() => readNpy(bytes, 'x.npy')).toThrow(message);
	});

	it('a header length past the end of the file is refused as truncated', () => {
		const b = v1.bytes.slice();
		new DataView(b.buffer).setUint16(8, 60000, true);
		expect(() => readNpy(b, 'x.npy')).toThrow(/header is 60000 bytes but the file ends after/);
	});
});

describe('fuzz: npz', () => {
	it('the valid archives read back', () => {
		for (const z of [stored, deflated]) expect([...readNpz(toBuffer(z), 'params.npz').keys()].sort()).toEqual(['W_enc', 'b_dec']);
	});

	for (const [name, z] of [
		['stored', stored],
		['deflated', deflated]
	] as const)
		it(`mutated ${name} archives: entry counts, sizes, offsets, name lengths, truncation, random bytes`, () => {
			fuzz(
				npzTally,
				mutatedBytes(z, zipFields(z)),
				({ bytes }) => runCase(bytes.length, () => readNpz(toBuffer(bytes), 'params.npz'), { budget: npzBudget(bytes.length) }),
				800
			);
		});

	// fflate's unzipSync loops over the entry count of the (zip64) end record and allocates each
	// entry's declared uncompressed size: a 98-byte file claiming 4 billion entries, or one entry of
	// 4 GB, must be refused from the directory, not run or allocated.
	it('a zip64 end record claiming 4 billion entries is refused at once', () => {
		const z = zip64Claiming(2 ** 32 - 1);
		const o = runCase(z.length, () => readNpz(toBuffer(z), 'params.npz'), { timeoutMs: 500 });
		expect(o).toEqual({
			kind: 'refused',
			message: expect.stringMatching(
				/params.npz is not a readable .npz \(zip\) archive: its directory claims more entries than 98 bytes can hold/
			)
		});
	});

	it('an entry whose declared uncompressed size is 4 GB is refused before it is inflated', () => {
		const z = deflated.slice();
		const cd = zipFields(z).find((f) => f.name === 'CD uncompressed size')!;
		new DataView(z.buffer).setUint32(cd.at, 0xfffffff0, true);
		const o = runCase(z.length, () => readNpz(toBuffer(z), 'params.npz'));
		expect(o).toEqual({
			kind: 'refused',
			message: expect.stringMatching(/W_enc.npy claims 4,294,967,280 bytes uncompressed from \d+ compressed/)
		});
	});
});

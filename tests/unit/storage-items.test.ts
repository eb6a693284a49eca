// The Storage panel counts a trained run by what structured clone stores: typed arrays by their
// bytes, numbers 8, strings 2 a character (worked out by hand here).
import { describe, expect, it } from 'vitest';
import { recordBytes } from '../../src/lib/engine/store/storage';

describe('stored record sizes', () => {
	it('counts typed arrays by bytes, numbers, strings and keys', () => {
		const wEnc = new Float32Array(64 * 32);
		const rec = { id: 'run-a', params: { wEnc }, step: 3, corpus: [[1, 2, 3]] };
		// keys: id(2) params(6) wEnc(4) step(4) corpus(6) → 22 chars = 44 bytes; 'run-a' 10; wEnc 8192; step 8; corpus 24
		expect(recordBytes(rec)).toBe(44 + 10 + 8192 + 8 + 24);
		const shared = new Float64Array(4);
		expect(recordBytes([shared, shared])).toBe(32); // one copy, as structured clone keeps it
	});
});

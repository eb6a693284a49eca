// onnxruntime's loader reads: each read a WeightFile made is freed (detached) once the next one
// comes and at done(); in-memory files and shared buffers are left alone, and the bytes read are
// the file's. (The app drops them in its worker; `true` asks for it here in Node.)
import { describe, expect, it } from 'vitest';
import { WeightFile } from '../../src/lib/engine/model/onnx/weight-file';
import { loaderReads } from '../../src/lib/engine/model/onnx/loader-reads';

const bytes = Uint8Array.from({ length: 4096 }, (_, i) => (i * 7) & 255);
const onDemand = () => new WeightFile('w.bin', bytes.byteLength, (s, e) => bytes.slice(s, e));

describe('loaderReads', () => {
	it('drops each read when the next one comes, and the last at done()', () => {
		const reads = loaderReads([{ path: 'w.bin', data: onDemand() }], true);
		const file = reads.files![0].data;
		const a = file.subarray(0, 1000);
		expect(Array.from(a.subarray(0, 3))).toEqual([0, 7, 14]);
		expect(a.buffer.byteLength).toBe(1000);
		const b = file.subarray(1000, 3000);
		expect(Array.from(b)).toEqual(Array.from(bytes.subarray(1000, 3000)));
		expect(a.buffer.byteLength).toBe(0); // detached: its bytes are gone
		expect(b.buffer.byteLength).toBe(2000);
		reads.done();
		expect(b.buffer.byteLength).toBe(0);
		expect(file.byteLength).toBe(bytes.byteLength);
	});

	it('leaves in-memory files, and reads that share a buffer, alone', () => {
		const inMemory = bytes.slice();
		const shared = new ArrayBuffer(8192);
		const sharing = new WeightFile('s.bin', 4096, (s, e) => new Uint8Array(shared, 100 + s, e - s));
		const reads = loaderReads(
			[
				{ path: 'm.bin', data: inMemory },
				{ path: 's.bin', data: sharing }
			],
			true
		);
		expect(reads.files![0].data).toBe(inMemory);
		const v = reads.files![1].data.subarray(0, 10);
		reads.files![1].data.subarray(10, 20);
		reads.done();
		expect(v.byteLength).toBe(10);
		expect(shared.byteLength).toBe(8192);
	});

	it('hands files with no on-demand reads over as they are', () => {
		const files = [{ path: 'm.bin', data: bytes }];
		expect(loaderReads(files, true).files).toBe(files);
		expect(loaderReads(undefined, true).files).toBeUndefined();
		// Node (no FileReaderSync): nothing is wrapped, the collector frees reads as before
		const lazy = [{ path: 'w.bin', data: onDemand() }];
		expect(loaderReads(lazy).files).toBe(lazy);
	});
});

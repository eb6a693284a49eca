/**
 * NumPy .npy arrays and .npz archives (a zip of .npy files, stored or deflated; unzipped by fflate).
 * Reads little-endian float arrays in C order.
 */
import { unzipSync } from 'fflate';
import { LoupeError } from '../../errors';
import { widen, type FloatDtype, type NamedTensor } from './tensors';

const descrToDtype: Record<string, FloatDtype> = { '<f4': 'F32', '<f2': 'F16', '<f8': 'F64' };

export function readNpy(bytes: Uint8Array, name: string): NamedTensor {
	const bad = (why: string) => new LoupeError('not-an-sae', `${name} is not a readable .npy array: ${why}.`, 'Download it again or choose the right file.');
	if (bytes.length < 10 || bytes[0] !== 0x93 || String.fromCharCode(...bytes.subarray(1, 6)) !== 'NUMPY') throw bad('it lacks the \\x93NUMPY magic');
	const major = bytes[6];
	const dv = new DataView(bytes.buffer, bytes.byteOffset);
	const headerLen = major === 1 ? dv.getUint16(8, true) : dv.getUint32(8, true);
	const start = major === 1 ? 10 : 12;
	const header = new TextDecoder().decode(bytes.subarray(start, start + headerLen));
	const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1] ?? '';
	const fortran = /'fortran_order':\s*True/.test(header);
	const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
	if (!(descr in descrToDtype)) throw bad(`its dtype ${descr || '?'} is not a little-endian float`);
	if (fortran) throw bad('it is in Fortran order');
	if (shapeText === undefined) throw bad('its header has no shape');
	const shape = shapeText.split(',').map((s) => s.trim()).filter(Boolean).map(Number);
	const count = shape.reduce((a, b) => a * b, 1);
	const dtype = descrToDtype[descr];
	const dataStart = start + headerLen;
	const need = count * { F32: 4, F16: 2, BF16: 2, F64: 8 }[dtype];
	if (bytes.length - dataStart < need) throw bad(`its shape [${shape}] needs ${need.toLocaleString('en')} bytes, it has ${(bytes.length - dataStart).toLocaleString('en')} (truncated)`);
	return { dtype, shape, data: widen(bytes, dataStart, count, dtype) };
}

export function readNpz(buf: ArrayBuffer, name: string): Map<string, NamedTensor> {
	let files: Record<string, Uint8Array>;
	try {
		files = unzipSync(new Uint8Array(buf));
	} catch (e) {
		throw new LoupeError('not-an-sae', `${name} is not a readable .npz (zip) archive: ${e instanceof Error ? e.message : e}.`, 'The file may be truncated; download it again.');
	}
	const out = new Map<string, NamedTensor>();
	for (const [file, bytes] of Object.entries(files)) if (file.endsWith('.npy')) out.set(file.slice(0, -4), readNpy(bytes, `${name}/${file}`));
	return out;
}

/**
 * NumPy .npy arrays and .npz archives (a zip of .npy files, stored or deflated; unzipped by fflate).
 * Reads little-endian float arrays in C order.
 */
import { unzipSync } from 'fflate';
import { LoupeError } from '../../errors';
import { dtypeBytes, widen, type FloatDtype, type NamedTensor } from './tensors';

const descrToDtype: Record<string, FloatDtype> = { '<f4': 'F32', '<f2': 'F16', '<f8': 'F64' };

export function readNpy(bytes: Uint8Array, name: string): NamedTensor {
	const bad = (why: string) =>
		new LoupeError('not-an-sae', `${name} is not a readable .npy array: ${why}.`, 'Download it again or choose the right file.');
	if (bytes.length < 10 || bytes[0] !== 0x93 || String.fromCharCode(...bytes.subarray(1, 6)) !== 'NUMPY')
		throw bad('it lacks the \\x93NUMPY magic');
	const major = bytes[6];
	if (major < 1 || major > 3) throw bad(`it is .npy format version ${major}; NumPy writes versions 1 to 3`);
	const start = major === 1 ? 10 : 12;
	if (bytes.length < start) throw bad('it ends inside its header length');
	const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
	const headerLen = major === 1 ? dv.getUint16(8, true) : dv.getUint32(8, true);
	if (start + headerLen > bytes.length)
		throw bad(`its header is ${headerLen} bytes but the file ends after ${bytes.length - start} (truncated)`);
	const header = new TextDecoder().decode(bytes.subarray(start, start + headerLen));
	const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1] ?? '';
	const fortran = /'fortran_order':\s*True/.test(header);
	const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
	if (!Object.hasOwn(descrToDtype, descr)) throw bad(`its dtype ${descr || '?'} is not a little-endian float`);
	if (fortran) throw bad('it is in Fortran order');
	if (shapeText === undefined) throw bad('its header has no shape');
	const parts = shapeText.split(',').map((s) => s.trim());
	if (parts.at(-1) === '') parts.pop(); // "(4,)": NumPy's one-element tuple
	const shape = parts.map((s) => (/^\d+$/.test(s) ? Number(s) : NaN));
	if (!shape.every((d) => Number.isSafeInteger(d))) throw bad(`its shape (${shapeText.slice(0, 60)}) is not a list of sizes`);
	const count = shape.reduce((a, b) => a * b, 1);
	const dtype = descrToDtype[descr];
	const dataStart = start + headerLen;
	const need = count * dtypeBytes[dtype];
	// Checked before widen() allocates `count` floats.
	if (bytes.length - dataStart < need)
		throw bad(
			`its shape [${shape}] needs ${need.toLocaleString('en')} bytes, it has ${(bytes.length - dataStart).toLocaleString('en')} (truncated)`
		);
	return { dtype, shape, data: widen(bytes, dataStart, count, dtype) };
}

/** Deflate expands at most 1032:1; a directory entry that claims more is lying about its size. */
const MAX_DEFLATE_RATIO = 1032;
/** The smallest central-directory entry (its fixed part). */
const CD_ENTRY_BYTES = 46;

export function readNpz(buf: ArrayBuffer, name: string): Map<string, NamedTensor> {
	const bad = (why: string) =>
		new LoupeError('not-an-sae', `${name} is not a readable .npz (zip) archive: ${why}.`, 'The file may be truncated; download it again.');
	const data = new Uint8Array(buf);
	// fflate loops over the entry count the end record gives and allocates each entry's declared
	// uncompressed size before inflating: both are checked here, against the archive's real length,
	// before fflate acts on them. Members other than .npy are never inflated.
	let entries = 0;
	let claimed = 0;
	const filter = (f: { name: string; size: number; originalSize: number; compression: number }) => {
		if (++entries * CD_ENTRY_BYTES > data.length) throw bad(`its directory claims more entries than ${data.length} bytes can hold`);
		if (!f.name.endsWith('.npy')) return false;
		if (f.size > data.length)
			throw bad(
				`${f.name} claims ${f.size.toLocaleString('en')} compressed bytes, more than the whole archive (${data.length.toLocaleString('en')})`
			);
		if (f.compression === 0 && f.originalSize !== f.size)
			throw bad(`${f.name} is stored uncompressed but its sizes disagree (${f.size} and ${f.originalSize})`);
		if (f.originalSize > MAX_DEFLATE_RATIO * f.size + 1024)
			throw bad(
				`${f.name} claims ${f.originalSize.toLocaleString('en')} bytes uncompressed from ${f.size.toLocaleString('en')} compressed, more than deflate can expand to`
			);
		claimed += f.originalSize;
		if (claimed > MAX_DEFLATE_RATIO * data.length) throw bad('its members claim more uncompressed bytes than the archive can expand to');
		return true;
	};
	let files: Record<string, Uint8Array>;
	try {
		files = unzipSync(data, { filter });
	} catch (e) {
		if (e instanceof LoupeError) throw e;
		throw bad(e instanceof Error ? e.message : String(e));
	}
	const out = new Map<string, NamedTensor>();
	for (const [file, bytes] of Object.entries(files))
		if (file.endsWith('.npy')) out.set(file.slice(0, -4), readNpy(bytes, `${name}/${file}`));
	return out;
}

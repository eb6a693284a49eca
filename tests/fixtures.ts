// Where the shared test fixtures live: ../shared/fixtures beside the repository (never copied in).
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const fixturesDir = process.env.LOUPE_FIXTURES ?? resolve(repoRoot, '../shared/fixtures');
export const hubDir = resolve(fixturesDir, 'hub');
export const stories260KDir = resolve(hubDir, 'karpathy/tinyllamas/resolve/main/stories260K');

export function readArrayBuffer(path: string): ArrayBuffer {
	const b = readFileSync(path);
	return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
}

/** The published greedy output of llama2.c's run.c for stories260K (trailing newline removed). */
export function publishedGreedy256(): string {
	return readFileSync(resolve(fixturesDir, 'stories260K.greedy256.txt'), 'utf8').replace(/\n$/, '');
}

/**
 * Storage as the Storage panel sees it: the model files in the Cache API (list, delete) and the
 * browser's quota. Corpus runs, labels, vectors, presets and training runs are in IndexedDB
 * (store/db.ts), each read and written by the capability that owns it.
 */
import { deleteCachedFile, listCachedFiles, type CachedFile } from './model-cache';

export function listCache(): Promise<CachedFile[]> {
	return listCachedFiles();
}

export function deleteCached(url: string): Promise<boolean> {
	return deleteCachedFile(url);
}

export async function storageEstimate(): Promise<{ usage: number; quota: number } | null> {
	const e = await navigator.storage?.estimate?.();
	return e ? { usage: e.usage ?? 0, quota: e.quota ?? 0 } : null;
}

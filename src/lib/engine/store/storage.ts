/**
 * Storage as the Storage panel sees it: everything this site keeps, listed with its size — the
 * model files and the app's own files (its onnxruntime wasm among them) in the Cache API, SAEs
 * trained here with their checkpoints and corpus, corpus runs, labels, vectors and presets in
 * IndexedDB (store/db.ts) — and the browser's quota, so the total and the list can agree.
 */
import { deleteCachedFile, listCachedFiles, MODEL_CACHE, type CachedFile } from './model-cache';
import { allRecords, deleteTrainRun, listTrainRuns } from './db';
import { listGraphs } from './graphs';

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

export interface StoredItem {
	kind: 'model' | 'app' | 'trained' | 'corpus' | 'labels' | 'vectors' | 'presets' | 'graphs';
	name: string;
	bytes: number;
	/** What deleting it takes: a cached model file's URL, or a training run's id. */
	url?: string;
	runId?: string;
}

/**
 * Bytes a stored record takes, counted as structured clone writes it: typed arrays by their bytes,
 * numbers 8, strings 2 a character (V8's two-byte form at most). IndexedDB may compress on disk.
 */
export function recordBytes(v: unknown, seen = new Set<object>()): number {
	if (v === null || v === undefined || typeof v === 'boolean') return 1;
	if (typeof v === 'number') return 8;
	if (typeof v === 'string') return 2 * v.length;
	if (typeof v !== 'object' || seen.has(v)) return 0; // an object stored twice is cloned once
	seen.add(v);
	if (ArrayBuffer.isView(v)) return v.byteLength;
	if (v instanceof ArrayBuffer) return v.byteLength;
	let n = 0;
	if (Array.isArray(v)) for (const x of v) n += recordBytes(x, seen);
	else for (const [k, x] of Object.entries(v)) n += 2 * k.length + recordBytes(x, seen);
	return n;
}

async function entryBytes(cache: Cache, req: Request): Promise<number> {
	const res = await cache.match(req);
	return Number(res?.headers.get('content-length')) || (await res?.clone().arrayBuffer())?.byteLength || 0;
}

/** Everything the site keeps, each with its size. */
export async function storedItems(): Promise<StoredItem[]> {
	const items: StoredItem[] = (await listCachedFiles()).map((f) => ({ kind: 'model', name: f.file, bytes: f.bytes, url: f.url }));
	// The service worker's copies of the app: each wasm listed by name, the rest together.
	if (typeof caches !== 'undefined') {
		let rest = 0;
		let files = 0;
		for (const key of await caches.keys()) {
			if (key === MODEL_CACHE) continue;
			const cache = await caches.open(key);
			for (const req of await cache.keys()) {
				const bytes = await entryBytes(cache, req);
				const name = new URL(req.url).pathname.split('/').pop() || req.url;
				if (name.endsWith('.wasm')) items.push({ kind: 'app', name, bytes });
				else ((rest += bytes), files++);
			}
		}
		if (files) items.push({ kind: 'app', name: `the app (${files} files, for offline use)`, bytes: rest });
	}
	for (const run of await listTrainRuns().catch(() => []))
		items.push({
			kind: 'trained',
			name: `${run.cfg.name}: ${run.params ? 'trained SAE and checkpoint' : 'checkpoint'}${run.corpus ? ', corpus' : ''}`,
			bytes: recordBytes(run),
			runId: run.id
		});
	const stores = [
		['corpusRuns', 'corpus', 'corpus runs'],
		['labels', 'labels', 'feature labels'],
		['vectors', 'vectors', 'steering vectors'],
		['presets', 'presets', 'steering presets']
	] as const;
	for (const [store, kind, what] of stores) {
		const all = await allRecords(store).catch(() => []);
		if (all.length) items.push({ kind, name: `${all.length} ${what}`, bytes: all.reduce<number>((a, r) => a + recordBytes(r), 0) });
	}
	// Saved attribution graphs live in their own database (store/graphs.ts).
	const graphs = await listGraphs().catch(() => []);
	if (graphs.length)
		items.push({ kind: 'graphs', name: `${graphs.length} attribution graphs`, bytes: graphs.reduce((a, g) => a + g.bytes, 0) });
	return items;
}

export async function deleteStoredRun(id: string) {
	await deleteTrainRun(id);
}

/**
 * Downloads of big immutable files (model weights, tokenizers) with progress, retries that resume
 * where the server allows ranges, and the Cache API so the second visit needs no network.
 * `fetchModelFile` answers with the bytes; `fetchModelBlob` with a Blob that is not read (the
 * Cache API's entry where it could be stored), for weights read a range at a time.
 */
import { LoupeError } from '../errors';

export const MODEL_CACHE = 'loupe-models-v1';

export interface DownloadProgress {
	url: string;
	file: string; // the file's name, for the progress bar
	loaded: number;
	total: number | null;
	fromCache: boolean;
	attempt: number;
}

export interface FetchedFile {
	buffer: ArrayBuffer;
	fromCache: boolean;
	/** Set when the file could not be stored (e.g. the disk is full); the file still works this time. */
	cacheWarning?: { code: 'storage-full'; message: string; action: string };
}

/** `{hub}/{repo}/resolve/{revision}/{path}`, the Hugging Face Hub layout. */
export function hubFileUrl(hub: string, repo: string, revision: string, path: string): string {
	return `${hub.replace(/\/+$/, '')}/${repo}/resolve/${encodeURIComponent(revision)}/${path.split('/').map(encodeURIComponent).join('/')}`;
}

const fileName = (url: string) => decodeURIComponent(new URL(url).pathname.split('/').pop() ?? url);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function isQuotaError(e: unknown) {
	return e instanceof DOMException && (e.name === 'QuotaExceededError' || e.code === 22);
}

async function openCache(): Promise<Cache | null> {
	try {
		return typeof caches === 'undefined' ? null : await caches.open(MODEL_CACHE);
	} catch {
		return null; // e.g. storage disabled in a private window: work without a cache
	}
}

export interface FetchedBlob extends Omit<FetchedFile, 'buffer'> {
	/** The file, unread: the cache's entry where it was stored (on disk in Chromium), else the download's parts. */
	blob: Blob;
}

interface FetchOptions {
	retries?: number;
	backoffMs?: number;
}

/**
 * Returns the file at `url`, from the cache when it is there, else from the network.
 * `retries` network failures are retried with backoff, resuming with a Range request.
 */
export async function fetchModelFile(
	url: string,
	onProgress: (p: DownloadProgress) => void,
	options: FetchOptions = {}
): Promise<FetchedFile> {
	const { blob, ...rest } = await fetchBlob(url, onProgress, options, false);
	return { buffer: await blob.arrayBuffer(), ...rest };
}

/** The same as a Blob: nothing of it is read into this thread's memory (weights are read a range at a time). */
export function fetchModelBlob(url: string, onProgress: (p: DownloadProgress) => void, options: FetchOptions = {}): Promise<FetchedBlob> {
	return fetchBlob(url, onProgress, options, true);
}

async function fetchBlob(
	url: string,
	onProgress: (p: DownloadProgress) => void,
	{ retries = 4, backoffMs = 500 }: FetchOptions,
	fromStore: boolean
): Promise<FetchedBlob> {
	const file = fileName(url);
	const cache = await openCache();
	const hit = await cache?.match(url);
	if (hit) {
		const blob = await hit.blob();
		const expected = Number(hit.headers.get('content-length'));
		if (!expected || expected === blob.size) {
			onProgress({ url, file, loaded: blob.size, total: blob.size, fromCache: true, attempt: 0 });
			return { blob, fromCache: true };
		}
		await cache!.delete(url); // a damaged entry: fetch it again
	}

	const chunks: Uint8Array[] = [];
	let loaded = 0;
	let total: number | null = null;
	let lastError: unknown;
	for (let attempt = 1; attempt <= retries + 1; attempt++) {
		if (attempt > 1) await sleep(backoffMs * 2 ** (attempt - 2));
		let res: Response;
		try {
			res = await fetch(url, { headers: loaded > 0 ? { Range: `bytes=${loaded}-` } : {}, cache: 'no-store' });
		} catch (e) {
			lastError = new LoupeError(
				'hub-unreachable',
				`Could not reach ${new URL(url).origin} to download ${file} (${e instanceof Error ? e.message : e}).`,
				'Check the network connection or the hub address in Settings, then try again.'
			);
			continue;
		}
		if (res.status === 404)
			throw new LoupeError(
				'not-found',
				`${file} was not found at ${url} (HTTP 404).`,
				'Check the model id and the hub address in Settings; a mirror must use the Hub layout {hub}/{repo}/resolve/{revision}/{path}.'
			);
		if (res.status === 401 || res.status === 403)
			throw new LoupeError(
				'http',
				`The hub refused to give ${file} (HTTP ${res.status}).`,
				'The repository may be gated or private; use a mirror or load the files from disk.'
			);
		if (!res.ok) {
			lastError = new LoupeError(
				'http',
				`The hub answered HTTP ${res.status} for ${file}.`,
				'Try again in a moment, or point Settings at another hub.'
			);
			if (res.status >= 500 || res.status === 429) continue;
			throw lastError;
		}
		if (res.status === 200 && loaded > 0) {
			// The server ignored our Range request: start over.
			chunks.length = 0;
			loaded = 0;
		}
		if (res.status === 200) total = Number(res.headers.get('content-length')) || null;
		else if (res.status === 206) {
			const m = /\/(\d+)$/.exec(res.headers.get('content-range') ?? '');
			if (m) total = Number(m[1]);
		}
		onProgress({ url, file, loaded, total, fromCache: false, attempt });
		try {
			const reader = res.body!.getReader();
			for (;;) {
				const { done, value } = await reader.read();
				if (done) break;
				chunks.push(value);
				loaded += value.byteLength;
				onProgress({ url, file, loaded, total, fromCache: false, attempt });
			}
		} catch (e) {
			lastError = new LoupeError(
				'truncated',
				`The download of ${file} broke off after ${loaded.toLocaleString('en')} of ${total?.toLocaleString('en') ?? '?'} bytes.`,
				'Check the network connection and try again; the download resumes where it stopped.'
			);
			continue; // resume with a Range request
		}
		if (total !== null && loaded < total) {
			lastError = new LoupeError(
				'truncated',
				`The download of ${file} ended early: ${loaded.toLocaleString('en')} of ${total.toLocaleString('en')} bytes.`,
				'Check the network connection and try again.'
			);
			continue;
		}
		const blob = new Blob(chunks as BlobPart[]);
		chunks.length = 0;
		let cacheWarning: FetchedFile['cacheWarning'];
		let stored: Blob | undefined;
		if (cache) {
			try {
				await cache.put(
					url,
					new Response(blob, {
						headers: {
							'content-length': String(blob.size),
							'content-type': res.headers.get('content-type') ?? 'application/octet-stream',
							'x-loupe-stored': new Date().toISOString()
						}
					})
				);
				// The stored entry, not the download's parts: those can then be freed.
				if (fromStore) stored = await (await cache.match(url))?.blob();
			} catch (e) {
				if (!isQuotaError(e)) throw e;
				cacheWarning = {
					code: 'storage-full',
					message: `${file} could not be saved for offline use: the browser's storage for this site is full.`,
					action:
						'The model runs now but will download again next visit. Free space in the Storage panel (delete models you no longer use).'
				};
			}
		}
		return { blob: stored?.size === blob.size ? stored : blob, fromCache: false, cacheWarning };
	}
	throw lastError;
}

export interface CachedFile {
	url: string;
	file: string;
	bytes: number;
	stored: string | null;
}

export async function listCachedFiles(): Promise<CachedFile[]> {
	const cache = await openCache();
	if (!cache) return [];
	const out: CachedFile[] = [];
	for (const req of await cache.keys()) {
		const res = await cache.match(req);
		const bytes = Number(res?.headers.get('content-length')) || (await res?.clone().arrayBuffer())?.byteLength || 0;
		out.push({ url: req.url, file: fileName(req.url), bytes, stored: res?.headers.get('x-loupe-stored') ?? null });
	}
	return out;
}

export async function deleteCachedFile(url: string): Promise<boolean> {
	return (await openCache())?.delete(url) ?? false;
}

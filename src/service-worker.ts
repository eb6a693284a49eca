/// <reference types="@sveltejs/kit" />
/// <reference no-default-lib="true"/>
/// <reference lib="esnext" />
/// <reference lib="webworker" />
/**
 * The offline shell: precaches the built app (JS, CSS, onnxruntime-web's wasm) and the static
 * files, among them what the app ships for its default model (static/bundled/: stories260K and its
 * SAEs, statistics and labels), so after one visit the page, the default model and its microscope
 * open with no network. Models from a hub are cached separately by the engine
 * (store/model-cache.ts) and are not touched here. Every path is under the worker's own folder
 * ($service-worker's lists carry the base it finds from its location), so the same build works
 * under any sub-path, and its scope is that folder.
 */
import { build, files, prerendered, version } from '$service-worker';

const sw = self as unknown as ServiceWorkerGlobalScope;
const SHELL = `loupe-shell-${version}`;
const ASSETS = [...build, ...files, ...prerendered];

/**
 * Files a worker bundle loads by relative URL (onnxruntime-web's .wasm) are not in `build`:
 * find them in the worker scripts themselves, so the engine starts offline too.
 */
async function workerAssets(): Promise<string[]> {
	const found: string[] = [];
	for (const path of build.filter((p) => p.includes('/workers/') && p.endsWith('.js'))) {
		const url = new URL(path, sw.location.href);
		const code = await (await fetch(url)).text();
		for (const m of code.matchAll(/["'`](assets\/[\w.-]+\.wasm)["'`]/g)) found.push(new URL(m[1], url).pathname);
	}
	return [...new Set(found)];
}

sw.addEventListener('install', (event) => {
	event.waitUntil(
		(async () => {
			const cache = await caches.open(SHELL);
			await cache.addAll(ASSETS);
			await cache.addAll(await workerAssets());
			await sw.skipWaiting();
		})()
	);
});

sw.addEventListener('activate', (event) => {
	event.waitUntil(
		(async () => {
			for (const key of await caches.keys()) if (key.startsWith('loupe-shell-') && key !== SHELL) await caches.delete(key);
			await sw.clients.claim();
		})()
	);
});

sw.addEventListener('fetch', (event) => {
	const req = event.request;
	const url = new URL(req.url);
	if (req.method !== 'GET' || url.origin !== sw.location.origin) return; // the hub and others: not ours
	event.respondWith(
		(async () => {
			const cache = await caches.open(SHELL);
			// The page itself, under any query string (?prompt=…), is the prerendered shell.
			const key = req.mode === 'navigate' ? new URL(url.pathname, url.origin).href : req;
			const hit =
				(await cache.match(key)) ?? (req.mode === 'navigate' ? await cache.match(new URL(sw.registration.scope).pathname) : undefined);
			if (hit) return hit;
			const res = await fetch(req);
			// Content-hashed build output never changes: keep any we missed for the next offline start.
			if (res.ok && url.pathname.includes('/_app/immutable/')) await cache.put(req, res.clone());
			return res;
		})()
	);
});

#!/usr/bin/env node
// A static server for browser tests and benchmarks, on 127.0.0.1 only:
//   /                    the built app (build/)
//   /hub/...             ../shared/fixtures/hub, a Hub-layout mirror, with HTTP Range support
//   /hub/api/models/{repo}/tree/{revision}/{folder}   the Hub's file list (JSON), from the same mirror
// and hubs that fail in the ways real networks do, each serving the same mirror:
//   /flaky-hub/...       the first request for each file breaks off halfway (tests resume)
//   /truncated-hub/...   every file is cut to 60% and honestly labelled with the short length
//   /html-hub/...        every file is an HTML error page with status 200 (a captive portal)
//   /slow-hub/...        streams slowly (about 2 s a file) so progress can be seen
//   /loupe/...           the built app again, under a sub-path (tests/e2e/offline-subpath.spec.ts)
// Usage: node tests/serve.mjs [--port 4173] [--root build] [--hub DIR] [--isolated]
//   --isolated: every response is cross-origin isolated (COOP same-origin, COEP require-corp, CORP
//   same-origin), which performance.measureUserAgentSpecificMemory needs (the no-leaks bench)
import { createServer } from 'node:http';
import { createReadStream, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join, normalize, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const args = Object.fromEntries(
	process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), [])
);
const here = dirname(fileURLToPath(import.meta.url));
const port = Number(args.port ?? 4173);
const root = resolve(args.root ?? join(here, '..', 'build'));
const hubRoot = resolve(args.hub ?? process.env.LOUPE_FIXTURES_HUB ?? join(here, '..', '..', 'shared', 'fixtures', 'hub'));
// Files tests write (e.g. an SAE made for the test) in the same Hub layout, served under the same /hub/.
const extraHubRoot = resolve(args['extra-hub'] ?? join(here, '.generated-hub'));

const types = {
	'.html': 'text/html; charset=utf-8',
	'.js': 'text/javascript',
	'.mjs': 'text/javascript',
	'.css': 'text/css',
	'.wasm': 'application/wasm',
	'.json': 'application/json',
	'.svg': 'image/svg+xml',
	'.webmanifest': 'application/manifest+json',
	'.bin': 'application/octet-stream',
	'.txt': 'text/plain'
};
const flakyServed = new Set();
const subPath = '/loupe';

/** The policy svelte.config.js wrote into the built index.html's <meta> (null before a build). */
let policy;
function appPolicy() {
	if (policy !== undefined) return policy;
	const index = join(root, 'index.html');
	const html = existsSync(index) ? readFileSync(index, 'utf8') : '';
	policy = /<meta http-equiv="content-security-policy" content="([^"]*)"/.exec(html)?.[1]?.replaceAll('&#39;', "'") ?? null;
	return policy;
}

function safeJoin(base, rel) {
	const p = normalize(join(base, decodeURIComponent(rel)));
	return p.startsWith(base) ? p : null;
}

function sendFile(req, res, path, { mode = 'plain' } = {}) {
	const size = statSync(path).size;
	const type = types[extname(path)] ?? 'application/octet-stream';
	if (mode === 'html') {
		res.writeHead(200, { 'content-type': 'text/html' });
		return res.end('<!doctype html><title>Please sign in</title><h1>Sign in to the school network</h1>'.repeat(40));
	}
	if (mode === 'truncated') {
		const cut = Math.floor(size * 0.6);
		res.writeHead(200, { 'content-type': type, 'content-length': cut });
		return createReadStream(path, { start: 0, end: cut - 1 }).pipe(res);
	}
	const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
	let start = 0;
	let end = size - 1;
	const headers = { 'content-type': type, 'accept-ranges': 'bytes', 'cache-control': 'no-cache' };
	if (range) {
		start = Number(range[1]);
		end = range[2] ? Number(range[2]) : size - 1;
		res.writeHead(206, { ...headers, 'content-range': `bytes ${start}-${end}/${size}`, 'content-length': end - start + 1 });
	} else res.writeHead(200, { ...headers, 'content-length': size });
	if (req.method === 'HEAD') return res.end();
	if (mode === 'flaky' && !flakyServed.has(path) && !range) {
		flakyServed.add(path);
		const half = Math.floor(size / 2);
		const s = createReadStream(path, { start: 0, end: half - 1 });
		s.on('data', (c) => res.write(c));
		s.on('end', () => setTimeout(() => res.socket?.destroy(), 50)); // break the connection mid-body
		return;
	}
	if (mode === 'slow') {
		const data = readFileSync(path).subarray(start, end + 1);
		const step = Math.max(1, Math.ceil(data.length / 20));
		let off = 0;
		const tick = () => {
			if (res.destroyed) return;
			res.write(data.subarray(off, (off += step)));
			if (off < data.length) setTimeout(tick, 100);
			else res.end();
		};
		return tick();
	}
	createReadStream(path, { start, end }).pipe(res);
}

/** The Hub's tree API: files (not folders) in one folder of a repo, with sizes. */
function sendTree(res, repo, revision, folder) {
	for (const base of [hubRoot, extraHubRoot]) {
		const dir = safeJoin(base, `${repo}/resolve/${revision}/${folder}`);
		if (!dir || !existsSync(dir) || !statSync(dir).isDirectory()) continue;
		const list = readdirSync(dir).map((name) => {
			const st = statSync(join(dir, name));
			return {
				type: st.isDirectory() ? 'directory' : 'file',
				path: folder ? `${folder.replace(/\/$/, '')}/${name}` : name,
				size: st.isDirectory() ? 0 : st.size
			};
		});
		res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-cache' });
		return res.end(JSON.stringify(list));
	}
	res.writeHead(404, { 'content-type': 'application/json' });
	res.end(JSON.stringify({ error: 'Repository not found' }));
}

const hubs = { '/hub/': 'plain', '/flaky-hub/': 'flaky', '/truncated-hub/': 'truncated', '/html-hub/': 'html', '/slow-hub/': 'slow' };

const isolated = process.argv.includes('--isolated');

createServer((req, res) => {
	const url = new URL(req.url, 'http://localhost');
	if (isolated) {
		res.setHeader('cross-origin-opener-policy', 'same-origin');
		res.setHeader('cross-origin-embedder-policy', 'require-corp');
		res.setHeader('cross-origin-resource-policy', 'same-origin');
	}
	if (url.pathname === '/__reset') {
		flakyServed.clear();
		return res.end('ok');
	}
	for (const [prefix, mode] of Object.entries(hubs)) {
		if (!url.pathname.startsWith(prefix)) continue;
		res.setHeader('access-control-allow-origin', '*');
		res.setHeader('access-control-expose-headers', 'content-length, content-range, accept-ranges');
		const rel = url.pathname.slice(prefix.length);
		const tree = /^api\/models\/([^/]+\/[^/]+)\/tree\/([^/]+)\/?(.*)$/.exec(rel);
		if (tree) return sendTree(res, tree[1], tree[2], tree[3]);
		let path = safeJoin(hubRoot, rel);
		if (!path || !existsSync(path)) path = safeJoin(extraHubRoot, rel);
		if (!path || !existsSync(path) || !statSync(path).isFile()) {
			res.writeHead(404, { 'content-type': 'text/plain' });
			return res.end('Entry not found');
		}
		return sendFile(req, res, path, { mode });
	}
	// The same build under a sub-path, as a project page (https://example.org/loupe/) serves it.
	if (url.pathname === subPath) {
		res.writeHead(301, { location: `${subPath}/${url.search}` });
		return res.end();
	}
	const appPath = url.pathname.startsWith(`${subPath}/`) ? url.pathname.slice(subPath.length) : url.pathname;
	let path = safeJoin(root, appPath);
	if (path && existsSync(path) && statSync(path).isDirectory()) path = join(path, 'index.html');
	if (path && !existsSync(path) && existsSync(`${path}.html`)) path = `${path}.html`; // prerendered pages: /bench → bench.html
	if (!path || !existsSync(path)) {
		res.writeHead(404, { 'content-type': 'text/plain' });
		return res.end('not found');
	}
	// A worker's Content-Security-Policy comes with its script's response, not the page's <meta>: send
	// the page's policy with the app's scripts, as the README asks of hosts that can set headers.
	if (/\.m?js$/.test(path) && url.pathname.startsWith('/_app/') && appPolicy()) res.setHeader('content-security-policy', appPolicy());
	sendFile(req, res, path);
}).listen(port, '127.0.0.1', () =>
	console.log(
		`Loupe test server: app http://localhost:${port}/  hub mirror http://localhost:${port}/hub  (app from ${root}, hub from ${hubRoot})`
	)
);

import adapter from '@sveltejs/adapter-static';
import { vitePreprocess } from '@sveltejs/vite-plugin-svelte';

/**
 * Where the page may connect: its own origin (the app, its wasm, a mirror served beside it, as the
 * tests serve one) and the Hugging Face Hub, whose `resolve` URLs redirect LFS and Xet files to its
 * CDN hosts (cdn-lfs.huggingface.co, cdn-lfs*.hf.co, cas-bridge.xethub.hf.co; a redirect's target
 * must be allowed too). A school mirror on another origin is added at build time:
 * LOUPE_HUB_ORIGINS="https://mirror.school.example" npm run build. A <meta> policy cannot follow
 * the Settings field at run time, and it does not reach the engine's worker (a worker's policy
 * comes with its script's HTTP response): hosts that can set headers should send this same policy
 * for /_app/ too.
 */
const hubOrigins = [
	'https://huggingface.co',
	'https://*.huggingface.co',
	'https://*.hf.co',
	...(process.env.LOUPE_HUB_ORIGINS ?? '').split(/\s+/).filter(Boolean)
];

/**
 * Where the site lives on its host. The default build runs under any path (SvelteKit's relative
 * paths: the page finds its base from its own address, the engine and the service worker from
 * theirs), so a project page such as https://example.org/loupe/ needs nothing. LOUPE_BASE_PATH=/loupe
 * fixes the base at build time instead (SvelteKit's `paths.base`: absolute URLs), for hosts that
 * rewrite paths or serve the pages from elsewhere.
 */
const basePath = (process.env.LOUPE_BASE_PATH ?? '').replace(/\/+$/, '');
if (basePath && !/^\/[\w.~-]+(\/[\w.~-]+)*$/.test(basePath))
	throw new Error(
		`LOUPE_BASE_PATH must be a path such as /loupe (a leading slash, no trailing one, letters, digits, . _ ~ -); got "${process.env.LOUPE_BASE_PATH}".`
	);

const buildDir = process.env.LOUPE_BUILD_DIR ?? 'build';

/** @type {import('@sveltejs/kit').Config} */
export default {
	preprocess: vitePreprocess(),
	kit: {
		// A folder of static files any host can serve; the one page is prerendered.
		// LOUPE_BUILD_DIR and LOUPE_KIT_DIR let a script build a second copy (npm run make-defaults, a
		// sub-path build) without touching build/ and .svelte-kit/.
		adapter: adapter({ pages: buildDir, assets: buildDir, fallback: undefined, strict: true }),
		outDir: process.env.LOUPE_KIT_DIR ?? '.svelte-kit',
		paths: { base: basePath, relative: true },
		serviceWorker: { register: true },
		// Prerendered pages get the policy as a <meta http-equiv> tag, with hashes for SvelteKit's own
		// inline boot script ('auto'): no 'unsafe-inline' or 'unsafe-eval' for scripts.
		// 'wasm-unsafe-eval' lets onnxruntime-web compile its wasm (it evaluates no JS).
		csp: {
			mode: 'auto',
			directives: {
				'default-src': ['self'],
				'script-src': ['self', 'wasm-unsafe-eval'],
				'worker-src': ['self'],
				'connect-src': ['self', ...hubOrigins],
				'img-src': ['self', 'data:', 'blob:'],
				// Svelte writes style="" attributes (token colours, chart sizes); what a style loads (url()) is still bound by img-src and font-src.
				'style-src': ['self', 'unsafe-inline'],
				'font-src': ['self'],
				'object-src': ['none'],
				'base-uri': ['self'],
				'form-action': ['self']
			}
		}
	}
};

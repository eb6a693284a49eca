import adapter from '@sveltejs/adapter-static';
import { vitePreprocess } from '@sveltejs/vite-plugin-svelte';

/** @type {import('@sveltejs/kit').Config} */
export default {
	preprocess: vitePreprocess(),
	kit: {
		// A folder of static files any host can serve; the one page is prerendered.
		adapter: adapter({ pages: 'build', assets: 'build', fallback: undefined, strict: true }),
		serviceWorker: { register: true }
	}
};

/**
 * A Node module hook for Vite's `?raw` imports (`import shader from '…/x.wgsl?raw'`), so the CLIs
 * can load engine modules that bundle a WGSL kernel beside its TypeScript reference: the file's
 * text becomes the module's default export, as Vite does it. Registered by the CLI entry points
 * (generate.ts) before they import the engine.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

type Load = (url: string, context: unknown, next: (url: string, context: unknown) => Promise<unknown>) => Promise<unknown>;

export const load: Load = async (url, context, next) => {
	if (!url.startsWith('file:') || !url.endsWith('?raw')) return next(url, context);
	const text = readFileSync(fileURLToPath(url.slice(0, -'?raw'.length)), 'utf8');
	return { format: 'module', source: `export default ${JSON.stringify(text)};`, shortCircuit: true };
};

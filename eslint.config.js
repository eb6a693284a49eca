// ESLint (flat config): the recommended JavaScript, TypeScript and Svelte rules; formatting is
// Prettier's (.prettierrc), so eslint-config-prettier turns the style rules off.
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import ts from 'typescript-eslint';
import svelte from 'eslint-plugin-svelte';
import prettier from 'eslint-config-prettier';
import globals from 'globals';
import svelteConfig from './svelte.config.js';

export default defineConfig(
	{
		ignores: [
			'build/',
			'.svelte-kit/',
			'test-results/',
			'playwright-report/',
			'tests/.generated-hub/',
			'tests/.generated-files/',
			'static/',
			'tests/bench/_scratch/'
		]
	},
	js.configs.recommended,
	ts.configs.recommended,
	svelte.configs.recommended,
	prettier,
	svelte.configs.prettier,
	// The app runs in pages and a worker; tests, the CLI and the servers in Node.
	{ languageOptions: { globals: { ...globals.browser, ...globals.worker, ...globals.node } } },
	{
		files: ['**/*.svelte', '**/*.svelte.ts'],
		languageOptions: { parserOptions: { parser: ts.parser, extraFileExtensions: ['.svelte'], svelteConfig } }
	},
	{
		rules: {
			// `_name` marks a binding kept for its position (a destructured tuple, a callback's signature).
			'@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
			// The code's idiom for two statements in one loop body: `seen.add(x), stack.push(x)`.
			'@typescript-eslint/no-unused-expressions': 'off',
			// The site is served from its root (adapter-static, no paths.base): links are plain paths.
			'svelte/no-navigation-without-resolve': 'off',
			// `{' '}` keeps a space at the start of a block, where Svelte would trim a plain one.
			'svelte/no-useless-mustaches': 'off'
		}
	}
);

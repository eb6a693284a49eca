/**
 * `npm run make-defaults`: remakes what the app ships for its default model under
 * static/bundled/loupe/stories260K-saes/resolve/main/: an SAE at every residual hook point of
 * stories260K (SAELens cfg.json + sae_weights.safetensors + sparsity.safetensors), its corpus
 * statistics (feature-stats.json, pointing into the shared corpus.json) and an automatic label per
 * feature (explanations.jsonl, Neuronpedia's format), plus metrics.json with what each reached.
 *
 *  1. the corpus: stories the model writes itself, with Loupe's runner on wasm in Node (corpus.ts);
 *  2. training, export and a corpus run per hook, by Loupe's own trainer in headless Chromium
 *     (train-in-browser.ts) on the built app, served by tests/serve.mjs;
 *  3. labels from each feature's top tokens and top logits (W_dec[f] · diag(g) · W_Uᵀ, the plain TS
 *     reference), written in Node.
 *
 * Everything is seeded: the same command gives the same corpus and the same training order.
 * Options: --no-build (reuse LOUPE_BUILD_DIR, default build/), --hooks h1,h2 (a subset; the others'
 * files and metrics stay). Each hook's files are written as soon as it is trained.
 * --transcoders: instead of the SAEs, the default transcoders at every layer, from the same corpus
 * (transcoders.ts), under static/bundled/loupe/stories260K-transcoders/resolve/main/.
 */
import { register } from 'node:module';
register('../../src/cli/raw-import.ts', import.meta.url);

const { spawn, spawnSync } = await import('node:child_process');
const { existsSync, mkdirSync, readFileSync, writeFileSync } = await import('node:fs');
const { dirname, join, resolve } = await import('node:path');
const { fileURLToPath } = await import('node:url');
const { writeCorpus } = await import('./corpus');
const { trainHooks } = await import('./train-in-browser');
const { makeTranscoders, TRANSCODER_REPO } = await import('./transcoders');
type TrainedHook = import('./train-in-browser').TrainedHook;
const { writeLabels } = await import('./labels');
const { BUNDLED_SAE_HOOKS, BUNDLED_SAE_REPO } = await import('../../src/lib/engine/sae/catalogue');
const { defaultTrainConfig } = await import('../../src/lib/engine/train/training-run');
const { statsToFile } = await import('../../src/lib/engine/defaults/feature-stats-file');

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const args = process.argv.slice(2);
const opt = (name: string) => {
	const i = args.indexOf(name);
	return i >= 0 ? args[i + 1] : undefined;
};
// The default SAE (blocks.2) first: a run cut short still leaves the one the page attaches.
const hooks = opt('--hooks')?.split(',') ?? [
	'blocks.2.hook_resid_pre',
	...BUNDLED_SAE_HOOKS.filter((h) => h !== 'blocks.2.hook_resid_pre')
];
const buildDir = resolve(root, process.env.LOUPE_BUILD_DIR ?? 'build');
const modelDir = join(root, 'static/bundled/karpathy/tinyllamas/resolve/main/stories260K');
const outDir = join(root, 'static/bundled', BUNDLED_SAE_REPO, 'resolve/main');
const port = Number(opt('--port') ?? 4191);
const SEED = 1;
const STORIES = Number(process.env.LOUPE_MD_STORIES ?? 16); // smaller for a quick check of the script itself
const STORY_TOKENS = 127; // a context of 128 with BOS: the corpus reader's window
const TRAIN_TOKENS = Number(process.env.LOUPE_MD_TOKENS ?? 10_000);
const transcoders = args.includes('--transcoders');
const env = (k: string, d: number) => Number(process.env[k] ?? d);
// The transcoders: JumpReLU (the attribution graph refuses TopK) with W_skip, 512 features a layer.
const TC_TOKENS = env('LOUPE_MD_TC_TOKENS', 40_000);

const t0 = performance.now();
const log = (s: string) => console.log(`[${((performance.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${s}`);
const buf = (p: string) => {
	const b = readFileSync(p);
	return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
};

if (!args.includes('--no-build')) {
	log('building the app');
	const b = spawnSync('npx', ['vite', 'build'], { cwd: root, stdio: 'inherit' });
	if (b.status !== 0) throw new Error('The build failed.');
}

log(`writing the corpus: ${STORIES} stories of up to ${STORY_TOKENS} tokens (wasm, Node)`);
const corpus = await writeCorpus(buf(join(modelDir, 'stories260K.bin')), buf(join(modelDir, 'tok512.bin')), STORIES, STORY_TOKENS, SEED);
const corpusName = `${corpus.stories} stories written by stories260K (seed ${SEED})`;
log(`corpus: ${corpus.stories} stories, ${corpus.tokens} tokens`);

mkdirSync(outDir, { recursive: true });
const metricsPath = join(outDir, 'metrics.json');
// Hooks made by an earlier (or partial) run stay listed until they are made again.
const earlier = existsSync(metricsPath) ? JSON.parse(readFileSync(metricsPath, 'utf8')).hooks : {};
const metrics: Record<string, unknown> = { ...earlier };
let contexts: number[][] | null = null;

/** Writes one hook's files as soon as it is trained (a long run keeps what it finished). */
function writeHook(t: TrainedHook) {
	// Every hook's corpus run reads the same text, so the contexts are the same: one corpus.json.
	if (!contexts) {
		contexts = t.contexts;
		writeFileSync(join(outDir, 'corpus.json'), JSON.stringify({ name: corpusName, contexts }));
	} else if (JSON.stringify(t.contexts) !== JSON.stringify(contexts)) throw new Error(`The corpus run at ${t.hook} read other contexts.`);
	const createdAt = new Date().toISOString();
	const dir = join(outDir, t.hook);
	mkdirSync(dir, { recursive: true });
	writeFileSync(join(dir, 'cfg.json'), t.cfgJson);
	writeFileSync(join(dir, 'sae_weights.safetensors'), t.safetensors);
	writeFileSync(join(dir, 'sparsity.safetensors'), t.sparsity);
	const st = t.stats as Record<string, number[]>;
	const stats = {
		dSae: t.stats.dSae as number,
		tokens: t.stats.tokens as number,
		fires: Uint32Array.from(st.fires),
		maxAct: Float32Array.from(st.maxAct),
		hist: Uint32Array.from(st.hist),
		topVal: Float32Array.from(st.topVal),
		topRef: Uint32Array.from(st.topRef)
	};
	writeFileSync(join(dir, 'feature-stats.json'), JSON.stringify(statsToFile(stats, corpusName, createdAt)));
	const labelled = writeLabels(
		join(dir, 'explanations.jsonl'),
		t.hook,
		t.cfgJson,
		t.safetensors,
		stats,
		t.contexts,
		buf(join(modelDir, 'stories260K.bin')),
		buf(join(modelDir, 'tok512.bin'))
	);
	metrics[t.hook] = { ...t.metrics, seconds: Math.round(t.seconds), phases: t.phases, fired: labelled, createdAt };
	writeFileSync(
		metricsPath,
		JSON.stringify(
			{
				seed: SEED,
				corpus: { name: corpusName, stories: corpus.stories, tokens: corpus.tokens },
				trainTokens: TRAIN_TOKENS,
				secondsSoFar: Math.round((performance.now() - t0) / 1000),
				hooks: metrics
			},
			null,
			'\t'
		) + '\n'
	);
	log(`${t.hook}: files written`);
}

const server = spawn(process.execPath, [join(root, 'tests/serve.mjs'), '--port', String(port), '--root', buildDir], {
	stdio: ['ignore', 'pipe', 'inherit']
});
await new Promise((r) => server.stdout!.once('data', r));
const base = `http://localhost:${port}`;
try {
	// The app's own Hub-layout copy as the hub, no SAE (there is none yet), and the model on WebGPU: the trainer harvests there.
	const appUrl = `${base}/?backend=webgpu&hub=${encodeURIComponent(`${base}/bundled`)}&sae=`;
	if (transcoders)
		await makeTranscoders(
			appUrl,
			join(root, 'static/bundled', TRANSCODER_REPO, 'resolve/main'),
			{
				...defaultTrainConfig('stories260K', 'blocks.0.hook_mlp_in'),
				name: 'stories260K transcoders',
				kind: 'transcoder',
				allLayers: true,
				skip: true,
				arch: 'jumprelu',
				width: env('LOUPE_MD_TC_WIDTH', 512),
				l0: env('LOUPE_MD_TC_L0', 0.02),
				bandwidth: env('LOUPE_MD_TC_BANDWIDTH', 0.1),
				threshold: env('LOUPE_MD_TC_THRESHOLD', 0.1),
				tokens: TC_TOKENS,
				seed: SEED,
				text: corpus.text
			},
			{ name: corpusName, stories: corpus.stories, tokens: corpus.tokens },
			log
		);
	else
		await trainHooks(
			appUrl,
			hooks,
			{ ...defaultTrainConfig('stories260K', hooks[0]), tokens: TRAIN_TOKENS, seed: SEED, text: corpus.text },
			corpusName,
			log,
			writeHook
		);
} finally {
	server.kill();
}
log(
	`wrote ${transcoders ? join(root, 'static/bundled', TRANSCODER_REPO, 'resolve/main') : outDir} in ${Math.round((performance.now() - t0) / 1000)} s`
);

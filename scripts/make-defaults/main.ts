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
 * Options: --no-build (reuse LOUPE_BUILD_DIR, default build/), --hooks h1,h2 (a subset).
 */
import { register } from 'node:module';
register('../../src/cli/raw-import.ts', import.meta.url);

const { spawn, spawnSync } = await import('node:child_process');
const { mkdirSync, readFileSync, writeFileSync } = await import('node:fs');
const { dirname, join, resolve } = await import('node:path');
const { fileURLToPath } = await import('node:url');
const { writeCorpus } = await import('./corpus');
const { trainHooks } = await import('./train-in-browser');
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
const hooks = opt('--hooks')?.split(',') ?? BUNDLED_SAE_HOOKS;
const buildDir = resolve(root, process.env.LOUPE_BUILD_DIR ?? 'build');
const modelDir = join(root, 'static/bundled/karpathy/tinyllamas/resolve/main/stories260K');
const outDir = join(root, 'static/bundled', BUNDLED_SAE_REPO, 'resolve/main');
const port = Number(opt('--port') ?? 4191);
const SEED = 1;
const STORIES = Number(process.env.LOUPE_MD_STORIES ?? 64); // smaller for a quick check of the script itself
const STORY_TOKENS = 127; // a context of 128 with BOS: the corpus reader's window
const TRAIN_TOKENS = Number(process.env.LOUPE_MD_TOKENS ?? 40_000);

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

// What the slow part made, kept so --reuse can rewrite the files without training again.
const dump = join((await import('node:os')).tmpdir(), 'loupe-make-defaults.json');
const reuse = args.includes('--reuse');
type Trained = Awaited<ReturnType<typeof trainHooks>>;
let trained: Trained;
let corpus: Awaited<ReturnType<typeof writeCorpus>>;
let corpusName: string;
if (reuse) {
	const d = JSON.parse(readFileSync(dump, 'utf8'));
	({ corpus, corpusName } = d);
	trained = d.trained.map((t: Trained[number] & { safetensors: string; sparsity: string }) => ({
		...t,
		safetensors: new Uint8Array(Buffer.from(t.safetensors, 'base64')),
		sparsity: new Uint8Array(Buffer.from(t.sparsity, 'base64'))
	}));
	log(`reusing ${dump}`);
} else {
	log(`writing the corpus: ${STORIES} stories of up to ${STORY_TOKENS} tokens (wasm, Node)`);
	corpus = await writeCorpus(buf(join(modelDir, 'stories260K.bin')), buf(join(modelDir, 'tok512.bin')), STORIES, STORY_TOKENS, SEED);
	corpusName = `${corpus.stories} stories written by stories260K (seed ${SEED})`;
	log(`corpus: ${corpus.stories} stories, ${corpus.tokens} tokens`);

	const server = spawn(process.execPath, [join(root, 'tests/serve.mjs'), '--port', String(port), '--root', buildDir], {
		stdio: ['ignore', 'pipe', 'inherit']
	});
	await new Promise((r) => server.stdout!.once('data', r));
	const base = `http://localhost:${port}`;
	try {
		// The app's own Hub-layout copy as the hub, no SAE (there is none yet), and the model on WebGPU: the trainer harvests there.
		const appUrl = `${base}/?backend=webgpu&hub=${encodeURIComponent(`${base}/bundled`)}&sae=`;
		trained = await trainHooks(
			appUrl,
			hooks,
			{ ...defaultTrainConfig('stories260K', hooks[0]), tokens: TRAIN_TOKENS, seed: SEED, text: corpus.text },
			corpusName,
			log
		);
	} finally {
		server.kill();
	}
	writeFileSync(
		dump,
		JSON.stringify({
			corpus,
			corpusName,
			trained: trained.map((t) => ({
				...t,
				safetensors: Buffer.from(t.safetensors).toString('base64'),
				sparsity: Buffer.from(t.sparsity).toString('base64')
			}))
		})
	);
}

mkdirSync(outDir, { recursive: true });
const createdAt = new Date().toISOString();
// Every hook's corpus run read the same text, so the contexts are the same: one corpus.json.
writeFileSync(join(outDir, 'corpus.json'), JSON.stringify({ name: corpusName, contexts: trained[0].contexts }));
const metrics: Record<string, unknown> = {};
for (const t of trained) {
	if (JSON.stringify(t.contexts) !== JSON.stringify(trained[0].contexts))
		throw new Error(`The corpus run at ${t.hook} read other contexts.`);
	const dir = join(outDir, t.hook);
	mkdirSync(dir, { recursive: true });
	writeFileSync(join(dir, 'cfg.json'), t.cfgJson);
	writeFileSync(join(dir, 'sae_weights.safetensors'), t.safetensors);
	writeFileSync(join(dir, 'sparsity.safetensors'), t.sparsity);
	const stats = {
		...(t.stats as Record<string, number[]>),
		fires: Uint32Array.from(t.stats.fires as number[]),
		maxAct: Float32Array.from(t.stats.maxAct as number[]),
		hist: Uint32Array.from(t.stats.hist as number[]),
		topVal: Float32Array.from(t.stats.topVal as number[]),
		topRef: Uint32Array.from(t.stats.topRef as number[]),
		dSae: t.stats.dSae as number,
		tokens: t.stats.tokens as number
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
	metrics[t.hook] = { ...t.metrics, seconds: Math.round(t.seconds), labelled };
}
const totalSeconds = Math.round((performance.now() - t0) / 1000);
writeFileSync(
	join(outDir, 'metrics.json'),
	JSON.stringify(
		{
			createdAt,
			seed: SEED,
			corpus: { name: corpusName, stories: corpus.stories, tokens: corpus.tokens },
			trainTokens: TRAIN_TOKENS,
			totalSeconds,
			hooks: metrics
		},
		null,
		'\t'
	) + '\n'
);
log(`wrote ${outDir} in ${totalSeconds} s`);

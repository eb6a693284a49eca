/**
 * `npm run make-defaults -- --transcoders`: Loupe's default transcoders for stories260K, one per layer
 * (blocks.L.hook_mlp_in → blocks.L.hook_mlp_out), trained together in one all-layers run by the
 * app's own trainer in headless Chromium (as a visitor's run on /train with "Transcoder, all
 * layers"), on the same seeded corpus as the bundled SAEs. Written under
 * static/bundled/loupe/stories260K-transcoders/resolve/main/: each layer's SAELens files (cfg.json
 * with hook_name and metadata.hook_name_out, sae_weights.safetensors with W_skip) and metrics.json
 * (each layer's held-out fraction of MLP-output variance explained, L0, and the CE loss recovered
 * with every MLP replaced). JumpReLU, so the attribution graph can read them (it refuses TopK).
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Worker } from 'playwright-core';
import { openEngine } from './train-in-browser';
import type { TrainConfig } from '../../src/lib/engine/train/training-run';

export const TRANSCODER_REPO = 'loupe/stories260K-transcoders';

interface Layer {
	layer: number;
	hook: string;
	cfgJson: string;
	safetensors: string;
	last: { explainedVariance: number; l0: number; dead: number } | null;
	ce: { explainedVariance?: number } | null;
}
interface FromWorker {
	layers: Layer[];
	layerEv: number[] | null;
	ce: { clean: number; spliced: number; zeroAblated: number; recovered: number; replaced?: number } | null;
	phases: [string, number][];
}

const inWorker = readFileSync(new URL('./in-worker-transcoders.js', import.meta.url), 'utf8')
	.replace(/^(\/\/.*\n)+/, '')
	.trim()
	.replace(/;$/, '');

/** Trains the transcoders at every layer and writes their files and metrics.json into `outDir` (replacing what was there). */
export async function makeTranscoders(
	appUrl: string,
	outDir: string,
	cfg: TrainConfig,
	corpus: { name: string; stories: number; tokens: number },
	log: (s: string) => void
) {
	const t0 = performance.now();
	const { browser, worker } = await openEngine(appUrl);
	let r: FromWorker;
	try {
		log(`transcoders: training ${cfg.arch} ${cfg.width} features${cfg.skip ? ' + W_skip' : ''} at every layer, ${cfg.tokens} tokens`);
		r = (await (worker as Worker).evaluate(`(${inWorker})(${JSON.stringify({ cfg })})`)) as FromWorker;
	} finally {
		await browser.close();
	}
	const seconds = Math.round((performance.now() - t0) / 1000);
	rmSync(outDir, { recursive: true, force: true });
	mkdirSync(outDir, { recursive: true });
	const layers: Record<string, unknown> = {};
	let bytes = 0;
	for (const l of r.layers) {
		const dir = join(outDir, l.hook);
		mkdirSync(dir, { recursive: true });
		const weights = Buffer.from(l.safetensors, 'base64');
		writeFileSync(join(dir, 'cfg.json'), l.cfgJson);
		writeFileSync(join(dir, 'sae_weights.safetensors'), weights);
		bytes += weights.length + l.cfgJson.length;
		layers[l.hook] = {
			hookOut: l.hook.replace(/hook_mlp_in$/, 'hook_mlp_out'),
			explainedVarianceHeldOut: r.layerEv?.[l.layer] ?? l.ce?.explainedVariance ?? null,
			explainedVarianceLastBatch: l.last?.explainedVariance ?? null,
			l0: l.last?.l0 ?? null,
			dead: l.last?.dead ?? null
		};
		log(
			`${l.hook}: held-out MLP-output variance explained ${(r.layerEv?.[l.layer] ?? NaN).toFixed(3)}, L0 ${l.last?.l0.toFixed(1)}, dead ${((l.last?.dead ?? 0) * 100).toFixed(0)} %`
		);
	}
	const metrics = {
		seed: cfg.seed,
		corpus,
		architecture: cfg.arch,
		width: cfg.width,
		skip: Boolean(cfg.skip),
		trainTokens: cfg.tokens,
		batch: cfg.batch,
		lr: cfg.lr,
		...(cfg.arch === 'jumprelu' ? { l0Coefficient: cfg.l0, bandwidth: cfg.bandwidth, initialThreshold: cfg.threshold } : {}),
		ceAllMlpsReplaced: r.ce,
		seconds,
		phases: r.phases,
		bytes,
		layers,
		createdAt: new Date().toISOString()
	};
	writeFileSync(join(outDir, 'metrics.json'), JSON.stringify(metrics, null, '\t') + '\n');
	log(
		`transcoders: CE loss recovered with all ${r.ce?.replaced} MLPs replaced ${r.ce ? (100 * r.ce.recovered).toFixed(1) : '—'} % (clean ${r.ce?.clean.toFixed(3)}, replaced ${r.ce?.spliced.toFixed(3)}, zeroed ${r.ce?.zeroAblated.toFixed(3)}); ${(bytes / 1e6).toFixed(2)} MB in ${seconds} s`
	);
	return metrics;
}

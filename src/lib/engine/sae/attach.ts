/**
 * Attaching an SAE to the loaded model: from a hub folder (SAELens, Gemma Scope, Gemma Scope 2
 * files), by its SAELens release and SAE id, from files the user picked, or from a trained run's
 * SAELens files. Attaching checks the SAE fits the model, cuts the model at its hook and builds
 * the SAE's GPU session; the explorer (explorer.ts) works with what is attached.
 * A transcoder (cfg.hookNameOut) attaches the same way: its features are encoded from its input hook
 * (blocks.L.hook_mlp_in), and the model is cut at its output hook too (blocks.L.hook_mlp_out), so
 * its reconstruction can be measured against what the MLP wrote (sae/transcoder-recon.ts).
 */
import { LoupeError } from '../errors';
import type { ModelSession } from '../model/session';
import { readSaeFiles, type ReadSae, type SaeFile } from './load';
import { readReleaseFiles, resolveSaeLensRelease } from './saelens-registry';
import { checkSaeFitsModel } from './validate';
import { SaeSession } from './session';
import { describePreprocessing, isTranscoder } from './config';
import type { SaeConfig } from './config';
import { latestCorpusRun, type CorpusRun } from '../store/db';
import { deleteCachedFile, fetchModelFile, hubFileUrl, type DownloadProgress } from '../store/model-cache';
import type { CorpusSummary, SaeFromHub, SaeInfo } from './explorer';

export function summarize(run: CorpusRun): CorpusSummary {
	return { corpus: run.corpus, contexts: run.contexts.length, tokens: run.stats.tokens, createdAt: run.createdAt };
}

/** Loads an SAE from a hub folder: SAELens files first, then Gemma Scope, then Gemma Scope 2. */
export async function loadSaeFromHub(session: ModelSession, req: SaeFromHub, onProgress: (p: DownloadProgress) => void): Promise<SaeInfo> {
	session.requireModel();
	const url = (file: string) => hubFileUrl(req.hub, req.repo, req.revision ?? 'main', `${req.folder.replace(/\/+$/, '')}/${file}`);
	const get = async (file: string): Promise<SaeFile | null> => {
		try {
			return { name: `${req.folder}/${file}`, buffer: (await fetchModelFile(url(file), onProgress)).buffer };
		} catch (e) {
			if (e instanceof LoupeError && e.code === 'not-found') return null;
			throw e;
		}
	};
	let files: SaeFile[];
	const cfg = await get('cfg.json');
	// sparsity.safetensors is optional, as SAE.from_pretrained treats it.
	if (cfg)
		files = [cfg, (await get('sae_weights.safetensors')) ?? cfg, ...[await get('sparsity.safetensors')].filter((f): f is SaeFile => !!f)];
	else {
		const npz = await get('params.npz');
		if (npz) files = [npz];
		else {
			const params = await get('params.safetensors');
			const config = params && (await get('config.json'));
			files = [params, config].filter((f): f is SaeFile => !!f);
		}
	}
	if (!files.length)
		throw new LoupeError(
			'not-found',
			`No SAE files were found in ${req.repo}/${req.folder} (looked for cfg.json, params.npz and params.safetensors).`,
			'Check the repository and folder names.'
		);
	try {
		// Gemma Scope 1 names the hook site in the repository, not the folder.
		return await attachRead(session, () => readSaeFiles(files, { hookName: req.hookName, repo: req.repo }), `${req.repo}/${req.folder}`);
	} catch (e) {
		// Files that do not parse must not be served from the cache next time.
		if (e instanceof LoupeError && e.code === 'not-an-sae')
			await Promise.all(files.map((f) => deleteCachedFile(url(f.name.split('/').pop()!))));
		throw e;
	}
}

/** Loads an SAE from files the user picked (an SAELens folder's files, a params.npz, …). */
export async function loadSaeFromFiles(session: ModelSession, files: File[], hookName?: string): Promise<SaeInfo> {
	session.requireModel();
	const read = await Promise.all(files.map(async (f) => ({ name: f.webkitRelativePath || f.name, buffer: await f.arrayBuffer() })));
	return attachSae(session, read, files.map((f) => f.name).join(' + '), hookName);
}

/**
 * Loads an SAE by its SAELens release and SAE id (`gpt2-small-res-jb`, `blocks.8.hook_resid_pre`),
 * resolved as SAE.from_pretrained resolves them: the release's repository and folder, its config
 * overrides and the SAE's Neuronpedia id; optional files (sparsity.safetensors) may be missing.
 */
export async function loadSaeFromRelease(
	session: ModelSession,
	req: { hub: string; release: string; saeId: string },
	onProgress: (p: DownloadProgress) => void
): Promise<SaeInfo> {
	session.requireModel();
	const r = resolveSaeLensRelease(req.release, req.saeId);
	const url = (file: string) => hubFileUrl(req.hub, r.repo, 'main', `${r.folder}/${file}`);
	const get = async (file: string, optional: boolean): Promise<SaeFile | null> => {
		try {
			return { name: `${r.folder}/${file}`, buffer: (await fetchModelFile(url(file), onProgress)).buffer };
		} catch (e) {
			if (optional && e instanceof LoupeError && e.code === 'not-found') return null;
			if (e instanceof LoupeError && e.code === 'not-found')
				throw new LoupeError(
					'not-found',
					`${r.repo}/${r.folder} has no ${file}, which release ${r.release} says is there.`,
					'Check the hub (or its mirror) in Settings; the release may have moved.'
				);
			throw e;
		}
	};
	const files = [
		...(await Promise.all(r.files.map((f) => get(f, false)))),
		...(await Promise.all(r.optional.map((f) => get(f, true))))
	].filter((f): f is SaeFile => !!f);
	try {
		return await attachRead(session, () => readReleaseFiles(r, files), `${r.repo}/${r.folder}`);
	} catch (e) {
		if (e instanceof LoupeError && e.code === 'not-an-sae')
			await Promise.all(files.map((f) => deleteCachedFile(url(f.name.split('/').pop()!))));
		throw e;
	}
}

/** Attaches an SAE to the loaded model from its files (a trained run's SAELens files). */
export function attachSae(session: ModelSession, files: SaeFile[], source: string, hookName?: string): Promise<SaeInfo> {
	return attachRead(session, () => readSaeFiles(files, { hookName }), source);
}

/** A transcoder's output hook on this model, checked as its input is (a hook the model offers, d_model wide). */
function transcoderOutputHook(
	session: ModelSession,
	m: ReturnType<ModelSession['requireModel']>,
	cfg: SaeConfig & { hookNameOut: string; dOut: number }
) {
	const c = m.source.shape;
	checkSaeFitsModel(
		{ ...cfg, hookName: cfg.hookNameOut, dIn: cfg.dOut },
		{ name: m.info.name, nLayers: c.nLayers, dModel: c.dModel, hooks: m.source.hooks }
	);
	return session.canonical(m, cfg.hookNameOut);
}

/** Attaches the SAE `read` gives, cutting the model at its hook (under the lock: not while it writes). */
function attachRead(session: ModelSession, read: () => ReadSae, source: string): Promise<SaeInfo> {
	return session.locked(async () => {
		const m = session.requireModel();
		const c = m.source.shape;
		if (m.source.dtype !== 'float32')
			throw new LoupeError(
				'model-failed',
				`${m.info.name} computes its residual stream in ${m.source.dtype}; Loupe's SAE and steering kernels read fp32.`,
				'Open the fp32 export of this model to use SAEs with it.'
			);
		const { cfg, weights, logSparsity } = read();
		checkSaeFitsModel(cfg, { name: m.info.name, nLayers: c.nLayers, dModel: c.dModel, hooks: m.source.hooks });
		const hook = session.canonical(m, cfg.hookName);
		const hookOut = isTranscoder(cfg) ? transcoderOutputHook(session, m, cfg) : null;
		// The model must be cut at the SAE's hook so the residual can be read there (a transcoder's output hook too).
		await session.ensureCuts(m, hookOut ? [hook, hookOut] : [hook]);
		const device = m.runner.backend === 'webgpu' ? await session.gpuDevice() : null;
		const unembed = {
			normWeight: null,
			...((await m.source.loadUnembedding()) ?? { classifier: new Float32Array(c.vocabSize * c.dModel) })
		};
		const saeSession = await SaeSession.create(cfg, weights, device, { vocabSize: c.vocabSize, dModel: c.dModel, ...unembed });
		m.sae?.session.destroy();
		const key = `${source}|${cfg.hookName}|${cfg.dSae}`;
		const run = (await latestCorpusRun(m.info.id, key).catch(() => undefined)) ?? null;
		const info: SaeInfo = {
			name: cfg.name,
			cfg,
			preprocessing: describePreprocessing(cfg),
			source,
			onGpu: saeSession.onGpu,
			corpus: run && summarize(run),
			logSparsity,
			densitySource: run ? 'corpus' : logSparsity ? 'sparsity.safetensors' : null
		};
		m.sae = { session: saeSession, info, hook, key, run, logSparsity };
		return info;
	});
}

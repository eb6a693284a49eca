/**
 * What ships with the app: the default model (stories260K) and its SAEs, with their corpus
 * statistics and automatic labels, served from the app's own origin under bundled/ in the Hub's
 * layout (static/bundled/, made by `npm run make-defaults`), so the first visit needs no hub and
 * no network. The Hub stays the source of everything else. This module says where the app's copy
 * is, opens the default model from it (for the default hub, and when a named hub cannot be
 * reached), and attaches a bundled SAE with its statistics and labels.
 */
import { LoupeError, type ErrorInfo } from '../errors';
import { defaultHub, findModel } from '../model/catalogue';
import type { LoadFromHub, ModelInfo, ModelSession } from '../model/session';
import { bundledSae, BUNDLED_RELEASE, BUNDLED_SAE_REPO, saesFor } from '../sae/catalogue';
import type { SaeExplorer, SaeInfo } from '../sae/explorer';
import { summarize } from '../sae/attach';
import { parseNeuronpediaExplanations } from '../sae/labels';
import { labelsFor, putLabels, saveCorpusRun, type CorpusRun } from '../store/db';
import { fetchModelFile, hubFileUrl, type DownloadProgress } from '../store/model-cache';
import { corpusFromFile, statsFromFile } from './feature-stats-file';

/** The folder under the app's root that holds the bundled files, in the Hub's layout. */
export const BUNDLED_DIR = 'bundled';

/**
 * The app's root URL (with its base path, ending in /), from where this code runs: built, the
 * engine's worker lives under {root}_app/; in the dev server, at the origin's root. So the app
 * finds its own files under any sub-path it is served from.
 */
export function appRoot(href: string = self.location.href): string {
	const u = new URL(href);
	const i = u.pathname.indexOf('/_app/');
	return u.origin + (i >= 0 ? u.pathname.slice(0, i + 1) : '/');
}

/** The app's own Hub-layout mirror of what it ships. */
export const bundledHub = (href?: string) => appRoot(href) + BUNDLED_DIR;

const sameHub = (a: string, b: string) => a.replace(/\/+$/, '') === b.replace(/\/+$/, '');

/**
 * Loads a catalogue model. A bundled one (stories260K) comes from the app's own copy when the hub
 * is the default one, and from a named hub (a school's mirror) otherwise, falling back to the
 * app's copy with a warning when that hub cannot be reached.
 */
export async function loadCatalogueModel(
	session: ModelSession,
	req: LoadFromHub,
	onProgress: (p: DownloadProgress) => void
): Promise<ModelInfo> {
	const entry = findModel(req.model);
	if (!entry?.bundled) return session.loadFromHub(req, onProgress);
	const own = { ...req, hub: bundledHub() };
	if (sameHub(req.hub, defaultHub)) return session.loadFromHub(own, onProgress);
	try {
		return await session.loadFromHub(req, onProgress);
	} catch (e) {
		if (!(e instanceof LoupeError && e.code === 'hub-unreachable')) throw e;
		const info = await session.loadFromHub(own, onProgress);
		const warning: ErrorInfo = {
			code: 'hub-unreachable',
			message: `${e.message} Loupe opened the copy of ${entry.name} it ships with instead.`,
			action: 'It works as the Hub’s copy does; other models need the hub: check its address in Settings.'
		};
		info.warnings.push(warning);
		return info;
	}
}

/**
 * Loads an SAE by release and SAE id: a bundled one from the app's copy (whatever the hub), with
 * its corpus statistics and automatic labels; any other through SAELens's registry on the hub.
 */
export async function loadSaeByRelease(
	explorer: SaeExplorer,
	session: ModelSession,
	req: { hub: string; release: string; saeId: string },
	onProgress: (p: DownloadProgress) => void
): Promise<SaeInfo> {
	if (req.release !== BUNDLED_RELEASE) return explorer.loadFromRelease(req, onProgress);
	const entry = bundledSae(req.release, req.saeId);
	if (!entry)
		throw new LoupeError(
			'not-found',
			`Loupe ships no SAE "${req.saeId}" in ${BUNDLED_RELEASE}.`,
			`Pick one of ${saesFor('stories260K')
				.map((s) => s.saeId)
				.join(', ')}.`
		);
	const hub = bundledHub();
	await explorer.loadFromHub({ hub, repo: entry.repo, folder: entry.folder }, onProgress);
	return attachDefaults(session, hub, entry.folder, onProgress);
}

const url = (hub: string, path: string) => hubFileUrl(hub, BUNDLED_SAE_REPO, 'main', path);

async function json(u: string, onProgress: (p: DownloadProgress) => void): Promise<unknown> {
	const f = await fetchModelFile(u, onProgress);
	try {
		return JSON.parse(new TextDecoder().decode(f.buffer));
	} catch {
		throw new LoupeError('not-an-sae', `${u} is not JSON.`, 'Reload the page; if it stays, rebuild the app after npm run make-defaults.');
	}
}

/**
 * The attached bundled SAE gets its shipped corpus run (density, histogram, top examples) and
 * automatic labels, unless IndexedDB already holds a run or labels for it (one's own corpus run or
 * labels win). Both are saved to IndexedDB as a corpus run and labels are.
 */
async function attachDefaults(
	session: ModelSession,
	hub: string,
	folder: string,
	onProgress: (p: DownloadProgress) => void
): Promise<SaeInfo> {
	const m = session.requireModel();
	const sae = m.sae!;
	if (!sae.run) {
		const [statsJson, corpusJson] = await Promise.all([
			json(url(hub, `${folder}/feature-stats.json`), onProgress),
			json(url(hub, 'corpus.json'), onProgress)
		]);
		const corpus = corpusFromFile(corpusJson);
		const stats = statsFromFile(statsJson, corpus.contexts.length);
		if (stats.dSae !== sae.info.cfg.dSae)
			throw new LoupeError(
				'not-an-sae',
				`The bundled statistics for ${folder} are for ${stats.dSae} features; its SAE has ${sae.info.cfg.dSae}.`,
				'Rebuild the app after npm run make-defaults.'
			);
		const name = (statsJson as { corpus: string }).corpus;
		const run: CorpusRun = {
			key: `${m.info.id}|${sae.key}|${name}`,
			model: m.info.id,
			sae: sae.key,
			corpus: name,
			createdAt: (statsJson as { createdAt: string }).createdAt,
			contexts: corpus.contexts,
			stats
		};
		// Kept for this page even where IndexedDB is full or off.
		await saveCorpusRun(run).catch(() => {});
		sae.run = run;
		sae.info.corpus = summarize(run);
		sae.info.densitySource = 'corpus';
	}
	const have = await labelsFor(sae.key).catch(() => []);
	if (!have.length) {
		const bytes = (await fetchModelFile(url(hub, `${folder}/explanations.jsonl`), onProgress)).buffer;
		const { explanations } = parseNeuronpediaExplanations(bytes, `${folder}/explanations.jsonl`);
		const labels = explanations
			.filter((e) => e.feature < sae.info.cfg.dSae)
			.map((e) => ({ sae: sae.key, feature: e.feature, description: e.description, source: 'automatic' as const, explanations: [e] }));
		await putLabels(labels).catch(() => {});
	}
	return sae.info;
}

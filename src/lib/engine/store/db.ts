/**
 * IndexedDB (through idb) for what must persist and is not a big immutable file: corpus-run
 * statistics per (model, SAE, corpus) and feature labels per SAE.
 */
import { openDB, type DBSchema, type IDBPDatabase } from 'idb';
import type { FeatureStats } from '../sae/corpus-stats';

export interface CorpusRun {
	key: string; // `${model}|${sae}|${corpus}`
	model: string;
	sae: string;
	corpus: string; // a name for people: "pasted text", "file stories.txt", "32 stories by the model"
	createdAt: string;
	contexts: number[][]; // token ids, BOS first: the top examples point into these
	stats: FeatureStats;
}

export interface FeatureLabel {
	sae: string;
	feature: number;
	description: string;
	source: 'neuronpedia' | 'user';
}

interface LoupeDB extends DBSchema {
	corpusRuns: { key: string; value: CorpusRun; indexes: { byModelSae: [string, string] } };
	labels: { key: [string, number]; value: FeatureLabel; indexes: { bySae: string } };
}

let dbPromise: Promise<IDBPDatabase<LoupeDB>> | null = null;

export function db(): Promise<IDBPDatabase<LoupeDB>> {
	dbPromise ??= openDB<LoupeDB>('loupe', 1, {
		upgrade(d) {
			d.createObjectStore('corpusRuns', { keyPath: 'key' }).createIndex('byModelSae', ['model', 'sae']);
			d.createObjectStore('labels', { keyPath: ['sae', 'feature'] }).createIndex('bySae', 'sae');
		}
	});
	return dbPromise;
}

export async function saveCorpusRun(run: CorpusRun) {
	await (await db()).put('corpusRuns', run);
}

/** The newest corpus run for this model and SAE, if any. */
export async function latestCorpusRun(model: string, sae: string): Promise<CorpusRun | undefined> {
	const runs = await (await db()).getAllFromIndex('corpusRuns', 'byModelSae', [model, sae]);
	return runs.sort((a, b) => b.createdAt.localeCompare(a.createdAt))[0];
}

export async function putLabels(labels: FeatureLabel[]) {
	const tx = (await db()).transaction('labels', 'readwrite');
	await Promise.all([...labels.map((l) => tx.store.put(l)), tx.done]);
}

export async function getLabel(sae: string, feature: number): Promise<FeatureLabel | undefined> {
	return (await db()).get('labels', [sae, feature]);
}

export async function labelsFor(sae: string): Promise<FeatureLabel[]> {
	return (await db()).getAllFromIndex('labels', 'bySae', sae);
}

/**
 * IndexedDB (through idb) for what must persist and is not a big immutable file: corpus-run
 * statistics per (model, SAE, corpus), feature labels per SAE (each with all its imported
 * explanations), steering vectors and presets, training checkpoints. A schema change bumps the
 * version and rewrites what older versions stored (`upgrade`).
 */
import { openDB, type DBSchema, type IDBPDatabase } from 'idb';
import type { FeatureStats } from '../sae/corpus-stats';
import type { SteeringVector } from '../steer/vectors';
import type { TrainCheckpoint } from '../train/training-run';
import type { ParsedExplanation } from '../sae/labels';
import { checkpointFromDb } from './checkpoint-record';

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
	/** The label shown first: one's own, or the explanation Neuronpedia lists first. */
	description: string;
	/** 'automatic': made by Loupe from the feature's top tokens and logits (the bundled SAEs' labels). */
	source: 'neuronpedia' | 'user' | 'automatic';
	/** Every explanation imported for the feature (with scores where the file gave them), in Neuronpedia's order. */
	explanations: ParsedExplanation[];
}

/**
 * A label as version 3 stored it (no `explanations`) in today's shape: an imported label was its
 * feature's one explanation; one's own label has none.
 */
export function upgradeLabel(l: Omit<FeatureLabel, 'explanations'> & { explanations?: ParsedExplanation[] }): FeatureLabel {
	if (Array.isArray(l.explanations)) return l as FeatureLabel;
	return { ...l, explanations: l.source === 'neuronpedia' ? [{ feature: l.feature, description: l.description }] : [] };
}

/** A named steering setup for a model: the `steer=` string and the vectors it uses. */
export interface SteeringPreset {
	model: string;
	name: string;
	steer: string;
	sae: string | null; // the SAE its features belong to, for people
	createdAt: string;
}

interface LoupeDB extends DBSchema {
	corpusRuns: { key: string; value: CorpusRun; indexes: { byModelSae: [string, string] } };
	labels: { key: [string, number]; value: FeatureLabel; indexes: { bySae: string } };
	vectors: { key: string; value: SteeringVector; indexes: { byModel: string } };
	presets: { key: [string, string]; value: SteeringPreset; indexes: { byModel: string } };
	trainRuns: { key: string; value: TrainCheckpoint };
}

let dbPromise: Promise<IDBPDatabase<LoupeDB>> | null = null;

export function db(): Promise<IDBPDatabase<LoupeDB>> {
	dbPromise ??= openDB<LoupeDB>('loupe', 4, {
		async upgrade(d, oldVersion, _newVersion, tx) {
			if (oldVersion < 1) {
				d.createObjectStore('corpusRuns', { keyPath: 'key' }).createIndex('byModelSae', ['model', 'sae']);
				d.createObjectStore('labels', { keyPath: ['sae', 'feature'] }).createIndex('bySae', 'sae');
			}
			if (oldVersion < 2) {
				d.createObjectStore('vectors', { keyPath: 'id' }).createIndex('byModel', 'model');
				d.createObjectStore('presets', { keyPath: ['model', 'name'] }).createIndex('byModel', 'model');
			}
			if (oldVersion < 3) d.createObjectStore('trainRuns', { keyPath: 'id' });
			if (oldVersion >= 1 && oldVersion < 4) {
				// Labels gained `explanations`: rewrite the ones stored before, in the upgrade's own transaction.
				for (let c = await tx.objectStore('labels').openCursor(); c; c = await c.continue()) await c.update(upgradeLabel(c.value));
			}
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
	const l = await (await db()).get('labels', [sae, feature]);
	return l && upgradeLabel(l);
}

export async function labelsFor(sae: string): Promise<FeatureLabel[]> {
	return (await (await db()).getAllFromIndex('labels', 'bySae', sae)).map(upgradeLabel);
}

export async function saveVector(v: SteeringVector) {
	await (await db()).put('vectors', v);
}

export async function getVector(id: string): Promise<SteeringVector | undefined> {
	return (await db()).get('vectors', id);
}

export async function vectorsFor(model: string): Promise<SteeringVector[]> {
	return (await db()).getAllFromIndex('vectors', 'byModel', model);
}

export async function deleteVector(id: string) {
	await (await db()).delete('vectors', id);
}

export async function savePreset(p: SteeringPreset) {
	await (await db()).put('presets', p);
}

export async function presetsFor(model: string): Promise<SteeringPreset[]> {
	return (await (await db()).getAllFromIndex('presets', 'byModel', model)).sort((a, b) => a.name.localeCompare(b.name));
}

export async function deletePreset(model: string, name: string) {
	await (await db()).delete('presets', [model, name]);
}

/** Training checkpoints: saved every N steps and on pause; a run resumes from its last one. */
export async function saveTrainRun(cp: TrainCheckpoint) {
	await (await db()).put('trainRuns', cp);
}

/** A run's last checkpoint, checked before use (checkpoint-record.ts): a damaged record is refused with what is wrong. */
export async function getTrainRun(id: string): Promise<TrainCheckpoint | undefined> {
	const record: unknown = await (await db()).get('trainRuns', id);
	return record === undefined ? undefined : checkpointFromDb(record, id);
}

/** The runs whose checkpoints are sound, newest first; a damaged one is left out of the list (and said so in the console). */
export async function listTrainRuns(): Promise<TrainCheckpoint[]> {
	const sound: TrainCheckpoint[] = [];
	for (const record of (await (await db()).getAll('trainRuns')) as unknown[])
		try {
			sound.push(checkpointFromDb(record));
		} catch (e) {
			console.warn(e instanceof Error ? e.message : e);
		}
	return sound.sort((a, b) => b.createdAt.localeCompare(a.createdAt));
}

export async function deleteTrainRun(id: string) {
	await (await db()).delete('trainRuns', id);
}

/** Every record of a store, for the Storage panel's sizes. */
export async function allRecords(store: 'corpusRuns' | 'labels' | 'vectors' | 'presets' | 'trainRuns'): Promise<unknown[]> {
	return (await db()).getAll(store);
}

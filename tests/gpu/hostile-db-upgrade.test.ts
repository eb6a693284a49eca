// The IndexedDB schema's upgrade, in Chromium: a database written by the previous version (3), with
// raw IndexedDB calls as that code wrote it (store/db.ts's upgrade history: v1 corpusRuns + labels,
// v2 vectors + presets, v3 trainRuns; labels had no `explanations`), is opened by today's db.ts and
// every record reads back, the labels rewritten in the upgrade itself (read raw afterwards, not
// through db.ts's read-time fallback). A future version bump adds its own case here.
import { expect, it } from 'vitest';
import { getLabel, getTrainRun, getVector, labelsFor, latestCorpusRun, listTrainRuns, presetsFor, db } from '../../src/lib/engine/store/db';

const req = <T>(r: IDBRequest<T>) =>
	new Promise<T>((ok, fail) => {
		r.onsuccess = () => ok(r.result);
		r.onerror = () => fail(r.error);
	});

/** Opens `name` at `version`, creating the stores as the code of that version did. */
function openAs(name: string, version: number, upgrade: (d: IDBDatabase, old: number) => void) {
	const r = indexedDB.open(name, version);
	r.onupgradeneeded = (e) => upgrade(r.result, e.oldVersion);
	return req(r);
}

const v3Label = { sae: 'hub:x/y', feature: 7, description: 'cats', source: 'neuronpedia' };
const v3OwnLabel = { sae: 'hub:x/y', feature: 9, description: 'my dogs', source: 'user' };
const corpusRun = {
	key: 'stories260K|hub:x/y|pasted text',
	model: 'stories260K',
	sae: 'hub:x/y',
	corpus: 'pasted text',
	createdAt: '2026-11-20T10:00:00.000Z',
	contexts: [[1, 5, 9]],
	stats: { tokens: 2, fires: [1, 0] }
};
const vector = {
	id: 'k3x9q2',
	name: 'happy − sad',
	model: 'stories260K',
	hook: 'blocks.2.hook_resid_pre',
	values: Float32Array.from([0.5, -1.25]),
	positive: ['happy'],
	negative: ['sad'],
	createdAt: '2026-11-21T00:00:00.000Z'
};
/** A TopK run's checkpoint as version 3's trainer saved it (d_in 2, width 3, after 4 steps; no phase, no corpus). */
const f32 = (n: number) => Float32Array.from({ length: n }, (_, i) => i / 8);
const trainRun = {
	id: 'run-old',
	cfg: {
		name: 'SAE blocks.1.hook_resid_pre',
		model: 'stories260K',
		hook: 'blocks.1.hook_resid_pre',
		arch: 'topk',
		width: 3,
		k: 1,
		auxCoeff: 0.03125,
		l1: 5,
		tokens: 640,
		batch: 64,
		lr: 0.004,
		stories: 4,
		storyTokens: 40,
		seed: 1,
		checkpointEvery: 2
	},
	dIn: 2,
	status: 'paused',
	step: 4,
	steps: 10,
	params: { wEnc: f32(6), bEnc: f32(3), wDec: f32(6), bDec: f32(2) },
	adam: { t: 4, m: [f32(6), f32(3), f32(6), f32(2)], v: [f32(6), f32(3), f32(6), f32(2)] },
	history: [{ step: 2, tokens: 128, mse: 0.5, nmse: 0.4, explainedVariance: 0.6, l0: 1, dead: 0, aux: 0.1 }],
	ce: [],
	fires: new Float64Array(3),
	sampled: 64,
	sinceFired: new Uint32Array(3),
	scale: 1.25,
	updatedAt: '2026-11-22T00:00:00.000Z',
	createdAt: '2026-11-22T00:00:00.000Z'
};
const preset = { model: 'stories260K', name: 'cheerful', steer: 'vk3x9q2:add:4', sae: null, createdAt: '2026-11-21T00:00:00.000Z' };

it('a version-3 database is upgraded to today’s schema with every record kept', async () => {
	await req(indexedDB.deleteDatabase('loupe'));
	const old = await openAs('loupe', 3, (d, oldVersion) => {
		// store/db.ts as of version 3, verbatim in raw IndexedDB.
		if (oldVersion < 1) {
			d.createObjectStore('corpusRuns', { keyPath: 'key' }).createIndex('byModelSae', ['model', 'sae']);
			d.createObjectStore('labels', { keyPath: ['sae', 'feature'] }).createIndex('bySae', 'sae');
		}
		if (oldVersion < 2) {
			d.createObjectStore('vectors', { keyPath: 'id' }).createIndex('byModel', 'model');
			d.createObjectStore('presets', { keyPath: ['model', 'name'] }).createIndex('byModel', 'model');
		}
		if (oldVersion < 3) d.createObjectStore('trainRuns', { keyPath: 'id' });
	});
	const tx = old.transaction(['corpusRuns', 'labels', 'vectors', 'presets', 'trainRuns'], 'readwrite');
	tx.objectStore('trainRuns').put(trainRun);
	tx.objectStore('labels').put(v3Label);
	tx.objectStore('labels').put(v3OwnLabel);
	tx.objectStore('corpusRuns').put(corpusRun);
	tx.objectStore('vectors').put(vector);
	tx.objectStore('presets').put(preset);
	await new Promise((ok, fail) => ((tx.oncomplete = ok), (tx.onerror = () => fail(tx.error))));
	old.close();

	// Today's code opens it (the upgrade runs) and reads every store.
	expect((await db()).version).toBeGreaterThanOrEqual(4);
	expect(await getLabel('hub:x/y', 7)).toEqual({ ...v3Label, explanations: [{ feature: 7, description: 'cats' }] });
	expect((await labelsFor('hub:x/y')).map((l) => [l.feature, l.source, l.explanations.length])).toEqual([
		[7, 'neuronpedia', 1],
		[9, 'user', 0]
	]);
	expect(await latestCorpusRun('stories260K', 'hub:x/y')).toEqual(corpusRun);
	expect(await getVector('k3x9q2')).toEqual(vector);
	expect(await presetsFor('stories260K')).toEqual([preset]);
	// The checkpoint passes the check every read makes (store/checkpoint-record.ts) and resumes as it was saved.
	expect(await getTrainRun('run-old')).toEqual(trainRun);
	expect((await listTrainRuns()).map((r) => r.id)).toEqual(['run-old']);

	// The upgrade rewrote the stored labels themselves.
	(await db()).close();
	const raw = await req(indexedDB.open('loupe'));
	const stored = await req(raw.transaction('labels').objectStore('labels').getAll());
	raw.close();
	expect(stored).toEqual([
		{ ...v3Label, explanations: [{ feature: 7, description: 'cats' }] },
		{ ...v3OwnLabel, explanations: [] }
	]);
});

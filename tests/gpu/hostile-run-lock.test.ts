// One training run at a time across tabs (store/run-lock.ts), on Chromium's real Web Locks: while
// one run holds the lock, another is refused at once with a message naming the holder; a worker (as
// the engine is) sees the same lock; once the run ends, the next one trains.
import { expect, it } from 'vitest';
import { takeTrainingLock, trainingHolder, withTrainingLock } from '../../src/lib/engine/store/run-lock';
import { LoupeError } from '../../src/lib/engine/errors';

const who = { name: 'SAE blocks.2.hook_resid_pre', model: 'stories260K', hook: 'blocks.2.hook_resid_pre', runId: null };

it('a second run is refused while the first holds the lock, naming it, and runs after it ends', async () => {
	expect(await trainingHolder()).toBeNull();
	let finish!: () => void;
	const first = withTrainingLock(who, () => new Promise<string>((ok) => (finish = () => ok('first done'))));
	await expect.poll(() => trainingHolder()).toMatchObject({ name: who.name, model: 'stories260K' });

	const refused = await withTrainingLock({ ...who, name: 'other' }, async () => 'ran').catch((e) => e);
	expect(refused).toBeInstanceOf(LoupeError);
	expect(refused.message).toMatch(
		/^Another tab of Loupe is training an SAE: “SAE blocks\.2\.hook_resid_pre” on stories260K at blocks\.2\.hook_resid_pre, since /
	);

	// Another agent of the origin (a worker, as the engine is) sees the lock held.
	const src = `navigator.locks.request('loupe-training', { ifAvailable: true }, (l) => postMessage(l ? 'free' : 'held'))`;
	const worker = new Worker(URL.createObjectURL(new Blob([src], { type: 'text/javascript' })));
	expect(await new Promise((ok) => (worker.onmessage = (e) => ok(e.data)))).toBe('held');
	worker.terminate();

	finish();
	expect(await first).toBe('first done');
	expect(await trainingHolder()).toBeNull();
	expect(await withTrainingLock({ ...who, name: 'second' }, async () => 'second ran')).toBe('second ran');
});

it('a run that throws lets go of the lock', async () => {
	await expect(withTrainingLock(who, async () => Promise.reject(new Error('GPU lost')))).rejects.toThrow('GPU lost');
	expect(await trainingHolder()).toBeNull();
});

it('take-and-release: held until released, refused meanwhile', async () => {
	const release = await takeTrainingLock(who);
	await expect(takeTrainingLock({ ...who, name: 'other' })).rejects.toThrow(/Another tab of Loupe is training an SAE: “SAE blocks/);
	release();
	await expect.poll(() => trainingHolder()).toBeNull();
	(await takeTrainingLock(who))();
});

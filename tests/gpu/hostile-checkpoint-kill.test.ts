// A tab killed mid-checkpoint (issue 16), in Chromium: a worker saves a training checkpoint through
// the app's own store code (store/db.ts) and is terminated mid-write, at several points (before the
// write, as it begins, a few milliseconds in, never); each time the page then reads the run back as
// a resume does (getTrainRun, checked by store/checkpoint-record.ts) and must find one whole
// checkpoint, the last complete one: every number of it from one step (a mix of two writes, or a
// record cut short, would show). A half-written record, as a writer in pieces would leave one, is
// refused by the same read with a message, and left out of the list of runs.
import { expect, it } from 'vitest';
import { db, getTrainRun, listTrainRuns, saveTrainRun } from '../../src/lib/engine/store/db';
import { LoupeError } from '../../src/lib/engine/errors';
import { KILL_RUN_ID, killCheckpoint, wholeStep } from './hostile-checkpoint-record';

/** Starts a writer, asks it to save `step`'s checkpoint, and terminates it at `kill`. */
async function writeAndKill(step: number, kill: 'before' | number | 'never'): Promise<void> {
	const worker = new Worker(new URL('./hostile-checkpoint-writer.worker.ts', import.meta.url), { type: 'module' });
	const said = (what: string) => new Promise<void>((ok) => worker.addEventListener('message', (e) => e.data === what && ok()));
	await said('ready');
	const writing = said('writing');
	const written = said('written');
	worker.postMessage({ step });
	if (kill === 'before') worker.terminate();
	else if (kill === 'never') await written;
	else {
		await writing;
		if (kill > 0) await new Promise((r) => setTimeout(r, kill));
	}
	worker.terminate();
}

it('a checkpoint killed mid-write leaves the last complete one, whole', { timeout: 60_000 }, async () => {
	await (await db()).clear('trainRuns');
	await saveTrainRun(killCheckpoint(2)); // the run's first complete checkpoint, written by the page
	let complete = 2;
	let interrupted = 0;
	const kills: ('before' | number | 'never')[] = ['before', 0, 0, 2, 8, 'never', 0];
	const outcomes: string[] = [];
	for (const [i, kill] of kills.entries()) {
		const step = 4 + 2 * i;
		await writeAndKill(step, kill);
		const cp = await getTrainRun(KILL_RUN_ID);
		expect(cp, `after the kill at ${kill}`).toBeDefined();
		expect(wholeStep(cp!), `after the kill at ${kill}`).toBe(cp!.step);
		// Either the write finished before the kill, or nothing of it is there.
		expect([complete, step], `after the kill at ${kill}`).toContain(cp!.step);
		if (kill === 'never' || kill === 'before') expect(cp!.step).toBe(kill === 'never' ? step : complete);
		if (cp!.step === complete) interrupted++;
		outcomes.push(`${kill}: ${cp!.step === complete ? 'previous kept' : 'new complete'}`);
		complete = cp!.step;
	}
	console.log(`kills: ${outcomes.join(', ')}`);
	// Some kill landed inside a write (else this test did not test one): 'before' always does.
	expect(interrupted).toBeGreaterThanOrEqual(2);
	expect((await listTrainRuns()).map((r) => [r.id, r.step])).toEqual([[KILL_RUN_ID, complete]]);
});

it('a half-written checkpoint is never read as complete', async () => {
	const whole = killCheckpoint(6);
	const half = {
		...whole,
		id: 'run-half',
		params: { ...whole.params!, wDec: whole.params!.wDec.subarray(0, whole.params!.wDec.length / 2) },
		adam: { t: 6, m: whole.adam.m.slice(0, 2), v: [] }
	};
	await (await db()).put('trainRuns', half);
	const e = await getTrainRun('run-half').catch((e) => e);
	expect(e).toBeInstanceOf(LoupeError);
	expect(e.message).toBe('The training run "run-half" stored in this browser is damaged: its wDec holds 65536 numbers, not 131072.');
	expect((await listTrainRuns()).map((r) => r.id)).not.toContain('run-half');
	await (await db()).delete('trainRuns', 'run-half');
});

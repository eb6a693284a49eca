// The writer half of hostile-checkpoint-kill.test.ts: a worker that saves one training checkpoint
// through the app's own store code (store/db.ts saveTrainRun) and says when the write has begun,
// so the test can terminate it mid-write, as a tab killed while checkpointing is.
/// <reference lib="webworker" />
import { saveTrainRun } from '../../src/lib/engine/store/db';
import { killCheckpoint } from './hostile-checkpoint-record';

self.onmessage = async (e: MessageEvent<{ step: number }>) => {
	const cp = killCheckpoint(e.data.step); // built before the write begins: the kill interrupts the write itself
	const saved = saveTrainRun(cp);
	self.postMessage('writing');
	await saved;
	self.postMessage('written');
};
self.postMessage('ready');

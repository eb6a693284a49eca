/**
 * The activation store of a transcoder run: for each context (BOS left out), the model's vectors at
 * the input hook (blocks.L.hook_mlp_in) and at the output hook (blocks.L.hook_mlp_out) of the same
 * token, paired into one row [x (d_in) | y (d_out)], as gpu/sae-trainer.ts reads a transcoder's
 * store. Each token's two halves are GPU-to-GPU copies out of ORT's buffers (train/training-run.ts
 * harvest does the same for one hook); nothing passes through the CPU. The model must be cut at both
 * hooks (ModelSession.ensureCuts).
 */
import type { SegmentRunner } from '../model/runner';
import { createStorage } from '../gpu/buffers';
import type { TrainShape } from './reference';

export interface PairedHooks {
	hookIn: string;
	hookOut: string;
	dIn: number;
	dOut: number;
}

/** Harvests paired rows [x | y] for each context into one GPU buffer of [rows, dIn + dOut]. */
export async function harvestPairs(
	device: GPUDevice,
	runner: SegmentRunner,
	hooks: PairedHooks,
	contexts: number[][],
	onProgress: (done: number, rows: number) => void,
	shouldStop: () => boolean
): Promise<{ store: GPUBuffer; rows: number; halted: boolean }> {
	const { hookIn, hookOut, dIn, dOut } = hooks;
	const stride = dIn + dOut;
	const total = contexts.reduce((a, c) => a + Math.max(0, c.length - 1), 0);
	const store = createStorage(device, Math.max(1, total) * stride * 4, 'train.transcoder-store');
	let rows = 0;
	for (const [i, ids] of contexts.entries()) {
		if (shouldStop()) return { store, rows, halted: true };
		runner.reset();
		let seen = { in: 0, out: 0 };
		const { logits } = await runner.forward(ids, (name, residual, n) => {
			const side = name === hookIn ? 'in' : name === hookOut ? 'out' : null;
			if (!side || n < 2) return;
			if (residual.location !== 'gpu-buffer') throw new Error('Training needs the model on WebGPU.');
			const [width, offset] = side === 'in' ? [dIn, 0] : [dOut, dIn];
			const enc = device.createCommandEncoder({ label: `harvest ${side}` });
			// Row t of the hook (t ≥ 1: BOS left out) goes to store row rows + t − 1, at its half.
			for (let t = 1; t < n; t++)
				enc.copyBufferToBuffer(residual.gpuBuffer as GPUBuffer, t * width * 4, store, ((rows + t - 1) * stride + offset) * 4, width * 4);
			device.queue.submit([enc.finish()]);
			seen = { ...seen, [side]: n - 1 };
		});
		logits.dispose();
		if (seen.in !== seen.out)
			throw new Error(`${hookIn} gave ${seen.in} rows but ${hookOut} ${seen.out}: the model must be cut at both hooks.`);
		rows += seen.in;
		await device.queue.onSubmittedWorkDone(); // so progress and its ETA are the real work's
		onProgress(i + 1, rows);
	}
	return { store, rows, halted: false };
}

/** A TrainShape (training-run.ts shapeOf's) made a transcoder's: the target's width and the skip connection. */
export function transcoderShape(shape: TrainShape, dOut: number, skip: boolean): TrainShape {
	return { ...shape, dOut, skip };
}

/**
 * The activation stores of a transcoder run: for each context (BOS left out), the model's vectors at
 * each layer's input hook (blocks.L.hook_mlp_in) and output hook (blocks.L.hook_mlp_out) of the same
 * token, paired into one row [x (d_in) | y (d_out)], as gpu/sae-trainer.ts reads a transcoder's
 * store: one store per layer, all harvested by the same forward passes (an all-layers run reads the
 * corpus once). Each token's two halves are GPU-to-GPU copies out of ORT's buffers
 * (train/training-run.ts harvest does the same for one hook); nothing passes through the CPU. The
 * model must be cut at every hook (ModelSession.ensureCuts).
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

/** The hooks a transcoder at `hookIn` (blocks.L.hook_mlp_in) learns to map: its output is the same layer's hook_mlp_out. */
export function outputHookOf(hookIn: string): string {
	const m = /^blocks\.(\d+)\.hook_mlp_in$/.exec(hookIn);
	if (!m) throw new Error(`A transcoder reads blocks.L.hook_mlp_in, not ${hookIn}.`);
	return `blocks.${m[1]}.hook_mlp_out`;
}

/**
 * Harvests paired rows [x | y] for each context, one GPU buffer of [rows, dIn + dOut] per entry of
 * `layers` (in that order); every store has the same rows, token for token.
 */
export async function harvestPairs(
	device: GPUDevice,
	runner: SegmentRunner,
	layers: PairedHooks[],
	contexts: number[][],
	onProgress: (done: number, rows: number) => void,
	shouldStop: () => boolean
): Promise<{ stores: GPUBuffer[]; rows: number; halted: boolean }> {
	const total = contexts.reduce((a, c) => a + Math.max(0, c.length - 1), 0);
	const stores = layers.map((h, l) => createStorage(device, Math.max(1, total) * (h.dIn + h.dOut) * 4, `train.transcoder-store.${l}`));
	// Hook name → (layer, side); a name can be both one layer's output and nothing else, never two inputs.
	const sideOf = new Map<string, { l: number; side: 'in' | 'out' }>();
	layers.forEach((h, l) => {
		sideOf.set(h.hookIn, { l, side: 'in' });
		sideOf.set(h.hookOut, { l, side: 'out' });
	});
	let rows = 0;
	for (const [i, ids] of contexts.entries()) {
		if (shouldStop()) return { stores, rows, halted: true };
		runner.reset();
		const seen = new Map<string, number>();
		const { logits } = await runner.forward(ids, (name, residual, n) => {
			const at = sideOf.get(name);
			if (!at || n < 2) return;
			if (residual.location !== 'gpu-buffer') throw new Error('Training needs the model on WebGPU.');
			const { dIn, dOut } = layers[at.l];
			const stride = dIn + dOut;
			const [width, offset] = at.side === 'in' ? [dIn, 0] : [dOut, dIn];
			const enc = device.createCommandEncoder({ label: `harvest ${name}` });
			// Row t of the hook (t ≥ 1: BOS left out) goes to store row rows + t − 1, at its half.
			for (let t = 1; t < n; t++)
				enc.copyBufferToBuffer(
					residual.gpuBuffer as GPUBuffer,
					t * width * 4,
					stores[at.l],
					((rows + t - 1) * stride + offset) * 4,
					width * 4
				);
			device.queue.submit([enc.finish()]);
			seen.set(name, n - 1);
		});
		logits.dispose();
		const counts = new Set(layers.flatMap((h) => [seen.get(h.hookIn) ?? 0, seen.get(h.hookOut) ?? 0]));
		if (counts.size !== 1) {
			const said = layers.map((h) => `${h.hookIn} ${seen.get(h.hookIn) ?? 0}, ${h.hookOut} ${seen.get(h.hookOut) ?? 0}`).join('; ');
			throw new Error(`The hooks gave different numbers of rows (${said}): the model must be cut at every hook.`);
		}
		rows += [...counts][0];
		await device.queue.onSubmittedWorkDone(); // so progress and its ETA are the real work's
		onProgress(i + 1, rows);
	}
	return { stores, rows, halted: false };
}

/** A TrainShape (training-run.ts shapeOf's) made a transcoder's: the target's width and the skip connection. */
export function transcoderShape(shape: TrainShape, dOut: number, skip: boolean): TrainShape {
	return { ...shape, dOut, skip };
}

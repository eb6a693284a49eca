/**
 * SAELens's "CE loss recovered": the model's next-token cross-entropy with the SAE's reconstruction
 * spliced in at the hook, against the clean loss and the loss with the residual there zeroed:
 *   recovered = (CE_zero − CE_spliced) / (CE_zero − CE_clean)
 * An evaluation on a few held-out contexts: the residual at the hook is read, reconstructed by the
 * SAE's TypeScript reference and written back; BOS is left as it is in both ablations.
 */
import type { SegmentRunner } from '../model/runner';
import { Sae } from '../sae/sae';
import { readBuffer } from '../gpu/buffers';
import type { CeRecovered } from './training-run';
import type { SaeConfig, SaeWeights } from '../sae/config';

function crossEntropy(logits: Float32Array, ids: number[], V: number): { sum: number; count: number } {
	let sum = 0;
	for (let t = 0; t + 1 < ids.length; t++) {
		const row = logits.subarray(t * V, (t + 1) * V);
		let max = -Infinity;
		for (const x of row) max = Math.max(max, x);
		let z = 0;
		for (const x of row) z += Math.exp(x - max);
		sum += Math.log(z) + max - row[ids[t + 1]];
	}
	return { sum, count: ids.length - 1 };
}

export async function ceLossRecovered(
	runner: SegmentRunner,
	device: GPUDevice | null,
	hook: string,
	cfg: SaeConfig,
	weights: SaeWeights,
	contexts: number[][]
): Promise<CeRecovered> {
	const sae = Sae.create(cfg, weights);
	const d = cfg.dIn;
	const V = runner.model.shape.vocabSize;
	const run = async (ids: number[], edit: 'clean' | 'splice' | 'zero') => {
		runner.reset();
		const { logits, rows } = await runner.forward(ids, async (name, residual, n) => {
			if (name !== hook || edit === 'clean') return;
			const gpu = residual.location === 'gpu-buffer';
			const x = gpu ? new Float32Array(await readBuffer(device!, residual.gpuBuffer as GPUBuffer, n * d * 4)) : (residual.data as Float32Array);
			const out = edit === 'zero' ? new Float32Array(n * d) : sae.decode(sae.encode(x.subarray(0, n * d), n), n);
			out.set(x.subarray(0, d), 0); // BOS as it was
			if (gpu) device!.queue.writeBuffer(residual.gpuBuffer as GPUBuffer, 0, out);
			else x.set(out);
		});
		const data = logits.location === 'gpu-buffer'
			? new Float32Array(await readBuffer(device!, logits.gpuBuffer as GPUBuffer, rows * V * 4))
			: Float32Array.from(logits.data as Float32Array);
		logits.dispose();
		return crossEntropy(data, ids, V);
	};
	const total = { clean: 0, splice: 0, zero: 0, count: 0 };
	for (const ids of contexts) {
		if (ids.length < 2) continue;
		for (const edit of ['clean', 'splice', 'zero'] as const) {
			const r = await run(ids, edit);
			total[edit] += r.sum;
			if (edit === 'clean') total.count += r.count;
		}
	}
	const n = Math.max(1, total.count);
	const clean = total.clean / n, spliced = total.splice / n, zeroAblated = total.zero / n;
	return { clean, spliced, zeroAblated, recovered: zeroAblated - clean !== 0 ? (zeroAblated - spliced) / (zeroAblated - clean) : 0 };
}

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

/** Summed next-token cross-entropy of a context's logits ([tokens, V]); transcoder-ce.ts uses it too. */
export function crossEntropy(logits: Float32Array, ids: number[], V: number): { sum: number; count: number } {
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

/**
 * Measures CE loss recovered on fixed contexts; the clean and zero-ablated losses do not depend on the
 * SAE, so they are measured once and each later evaluation runs only the spliced pass.
 */
export class CeEvaluator {
	private baseline: { clean: number; zero: number; count: number } | null = null;

	constructor(
		private runner: SegmentRunner,
		private device: GPUDevice | null,
		private hook: string,
		private contexts: number[][]
	) {}

	private async loss(ids: number[], edit: 'clean' | 'zero' | Sae): Promise<{ sum: number; count: number }> {
		const { runner, device, hook } = this;
		const V = runner.model.shape.vocabSize;
		runner.reset();
		const { logits, rows } = await runner.forward(ids, async (name, residual, n) => {
			if (name !== hook || edit === 'clean') return;
			const d = residual.dims[residual.dims.length - 1];
			const gpu = residual.location === 'gpu-buffer';
			const x = gpu
				? new Float32Array(await readBuffer(device!, residual.gpuBuffer as GPUBuffer, n * d * 4))
				: (residual.data as Float32Array);
			const out = edit === 'zero' ? new Float32Array(n * d) : edit.decode(edit.encode(x.subarray(0, n * d), n), n);
			out.set(x.subarray(0, d), 0); // BOS as it was
			if (gpu) device!.queue.writeBuffer(residual.gpuBuffer as GPUBuffer, 0, out);
			else x.set(out);
		});
		const data =
			logits.location === 'gpu-buffer'
				? new Float32Array(await readBuffer(device!, logits.gpuBuffer as GPUBuffer, rows * V * 4))
				: Float32Array.from(logits.data as Float32Array);
		logits.dispose();
		return crossEntropy(data, ids, V);
	}

	async recovered(cfg: SaeConfig, weights: SaeWeights): Promise<CeRecovered> {
		const usable = this.contexts.filter((ids) => ids.length >= 2);
		if (!this.baseline) {
			const b = { clean: 0, zero: 0, count: 0 };
			for (const ids of usable) {
				const clean = await this.loss(ids, 'clean');
				b.clean += clean.sum;
				b.count += clean.count;
				b.zero += (await this.loss(ids, 'zero')).sum;
			}
			this.baseline = b;
		}
		const sae = Sae.create(cfg, weights);
		let spliced = 0;
		for (const ids of usable) spliced += (await this.loss(ids, sae)).sum;
		const n = Math.max(1, this.baseline.count);
		const clean = this.baseline.clean / n,
			zeroAblated = this.baseline.zero / n,
			s = spliced / n;
		return { clean, spliced: s, zeroAblated, recovered: zeroAblated - clean !== 0 ? (zeroAblated - s) / (zeroAblated - clean) : 0 };
	}
}

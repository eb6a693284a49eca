/**
 * A transcoder run's evaluation on held-out contexts: CE loss recovered with every transcoder of the
 * run replacing its MLP at once (hook_mlp_out overwritten by transcoder(hook_mlp_in), each reading
 * the replaced model's own MLP input, as the replacement model runs), against the clean loss and
 * the loss with every one of those MLP outputs zeroed; and each layer's fraction of MLP-output
 * variance explained on the clean model's held-out (mlp_in, mlp_out) pairs. BOS is left as it is in
 * every pass (as ce-recovered.ts does for SAEs). The transcoders run as their TypeScript forward
 * (sae/transcoder.ts), on the raw hooks.
 */
import type { SegmentRunner } from '../model/runner';
import { readBuffer } from '../gpu/buffers';
import type { Transcoder } from '../sae/transcoder';
import type { CeRecovered } from './training-run';
import { crossEntropy } from './ce-recovered';
import type { PairedHooks } from './transcoder-harvest';
import type * as Ort from 'onnxruntime-web';

type Mode = 'clean' | 'zero' | Transcoder[];

export class TranscoderCe {
	/** The clean passes: summed CE, the zeroed passes' CE, and per layer the held-out pairs (BOS left out). */
	private baseline: { clean: number; zero: number; count: number; x: Float32Array[]; y: Float32Array[] } | null = null;

	constructor(
		private runner: SegmentRunner,
		private device: GPUDevice,
		private layers: PairedHooks[],
		private contexts: number[][]
	) {}

	private async rows(t: Ort.Tensor, n: number, width: number): Promise<Float32Array> {
		return t.location === 'gpu-buffer'
			? new Float32Array(await readBuffer(this.device, t.gpuBuffer as GPUBuffer, n * width * 4))
			: (t.data as Float32Array).slice(0, n * width);
	}

	/** Rows 1…n − 1 of a hook's tensor set to `rows` (BOS, row 0, as the model computed it). */
	private write(t: Ort.Tensor, rows: Float32Array, width: number) {
		if (t.location === 'gpu-buffer') this.device.queue.writeBuffer(t.gpuBuffer as GPUBuffer, width * 4, rows as Float32Array<ArrayBuffer>);
		else (t.data as Float32Array).set(rows, width);
	}

	/** One pass over a context; the clean pass also keeps each layer's (x, y) rows in `keep`. */
	private async pass(ids: number[], mode: Mode, keep?: { x: Float32Array[][]; y: Float32Array[][] }): Promise<number> {
		const { runner, layers } = this;
		const V = runner.model.shape.vocabSize;
		const at = new Map<string, { l: number; side: 'in' | 'out' }>();
		layers.forEach((h, l) => (at.set(h.hookIn, { l, side: 'in' }), at.set(h.hookOut, { l, side: 'out' })));
		const inputs: Float32Array[] = [];
		runner.reset();
		const { logits, rows } = await runner.forward(ids, async (name, residual, n) => {
			const hit = at.get(name);
			if (!hit || n < 2) return;
			const { dIn, dOut } = layers[hit.l];
			if (mode === 'clean') {
				const width = hit.side === 'in' ? dIn : dOut;
				if (keep) keep[hit.side === 'in' ? 'x' : 'y'][hit.l].push((await this.rows(residual, n, width)).slice(width));
			} else if (hit.side === 'in') {
				if (mode !== 'zero') inputs[hit.l] = await this.rows(residual, n, dIn);
			} else if (mode === 'zero') this.write(residual, new Float32Array((n - 1) * dOut), dOut);
			else this.write(residual, mode[hit.l].forward(inputs[hit.l], n).out.subarray(dOut), dOut);
		});
		const data =
			logits.location === 'gpu-buffer'
				? new Float32Array(await readBuffer(this.device, logits.gpuBuffer as GPUBuffer, rows * V * 4))
				: Float32Array.from(logits.data as Float32Array);
		logits.dispose();
		return crossEntropy(data, ids, V).sum;
	}

	/** CE loss recovered with `transcoders` (one per layer, in the order of `layers`) replacing every MLP, and each one's held-out variance explained. */
	async recovered(transcoders: Transcoder[]): Promise<CeRecovered & { layerEv: number[] }> {
		const usable = this.contexts.filter((ids) => ids.length >= 2);
		if (!this.baseline) {
			const keep = { x: this.layers.map(() => [] as Float32Array[]), y: this.layers.map(() => [] as Float32Array[]) };
			let clean = 0;
			let zero = 0;
			let count = 0;
			for (const ids of usable) {
				clean += await this.pass(ids, 'clean', keep);
				zero += await this.pass(ids, 'zero');
				count += ids.length - 1;
			}
			const cat = (parts: Float32Array[]) => {
				const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
				let o = 0;
				for (const p of parts) (out.set(p, o), (o += p.length));
				return out;
			};
			this.baseline = { clean, zero, count, x: keep.x.map(cat), y: keep.y.map(cat) };
		}
		const b = this.baseline;
		let spliced = 0;
		for (const ids of usable) spliced += await this.pass(ids, transcoders);
		const n = Math.max(1, b.count);
		const clean = b.clean / n;
		const zeroAblated = b.zero / n;
		const s = spliced / n;
		const layerEv = this.layers.map((h, l) => explainedVariance(transcoders[l], b.x[l], b.y[l], h.dOut));
		return {
			clean,
			spliced: s,
			zeroAblated,
			recovered: zeroAblated - clean !== 0 ? (zeroAblated - s) / (zeroAblated - clean) : 0,
			replaced: transcoders.length,
			layerEv
		};
	}
}

/** 1 − Σ‖y − ŷ‖² / Σ‖y − ȳ‖² over the rows (ȳ their mean): the fraction of MLP-output variance explained. */
export function explainedVariance(tc: Transcoder, x: Float32Array, y: Float32Array, dOut: number): number {
	const rows = y.length / dOut;
	if (!rows) return 0;
	const { out } = tc.forward(x, rows);
	const mean = new Float64Array(dOut);
	for (let r = 0; r < rows; r++) for (let i = 0; i < dOut; i++) mean[i] += y[r * dOut + i] / rows;
	let sse = 0;
	let sst = 0;
	for (let r = 0; r < rows; r++)
		for (let i = 0; i < dOut; i++) {
			sse += (y[r * dOut + i] - out[r * dOut + i]) ** 2;
			sst += (y[r * dOut + i] - mean[i]) ** 2;
		}
	return sst > 0 ? 1 - sse / sst : 0;
}

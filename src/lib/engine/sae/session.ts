/**
 * An SAE attached to the loaded model: encodes the residual at its hook (on the GPU from ORT's
 * buffer, or with the TS reference on the wasm fallback), and answers questions about features.
 */
import type * as Ort from 'onnxruntime-web';
import { Sae } from './sae';
import type { SaeConfig, SaeWeights } from './config';
import { decoderCosinesReference, logitEffectsReference, ranked, type RankedItem, type Unembedding } from './features';
import { topK } from './sae';
import { SaeEncoder } from '../gpu/sae-encoder';
import { FeatureInspector } from '../gpu/feature-inspector';
import { readBuffer } from '../gpu/buffers';
import { FeatureStatsGpu } from '../gpu/feature-stats';
import { SaeReconstruction } from '../gpu/sae-reconstruction';
import { metricsOf, type ReconMetrics } from './reconstruction';
import { SteerKernel } from '../gpu/steer';
import { steerDirections, steerReference, type SteerFeature } from '../steer/spec';
import { accumulateReference, emptyStats, type FeatureStats } from './corpus-stats';

export interface EncodedTokens {
	tokens: number;
	k: number;
	ids: Uint32Array;
	values: Float32Array;
}

export class SaeSession {
	private lastTokens = 0;
	private cpuActs: Float32Array | null = null;
	/** Whether the last encode ran on the GPU (its activations are in the encoder's buffer) or on the CPU (cpuActs). */
	private lastOnGpu = false;

	private constructor(
		readonly sae: Sae,
		private device: GPUDevice | null,
		private encoder: SaeEncoder | null,
		private inspector: FeatureInspector | null,
		private recon: SaeReconstruction | null,
		private steerKernel: SteerKernel | null,
		private unembedding: Unembedding
	) {}

	static async create(cfg: SaeConfig, weights: SaeWeights, device: GPUDevice | null, unembedding: Unembedding): Promise<SaeSession> {
		const sae = Sae.create(cfg, weights);
		if (!device) return new SaeSession(sae, null, null, null, null, null, unembedding);
		const encoder = await SaeEncoder.create(device, sae);
		const inspector = await FeatureInspector.create(device, sae, unembedding);
		const recon = await SaeReconstruction.create(device, sae, inspector.chunks);
		const steer = await SteerKernel.create(device);
		return new SaeSession(sae, device, encoder, inspector, recon, steer, unembedding);
	}

	get onGpu() {
		return this.encoder !== null;
	}

	/** Encodes `rows` tokens of the residual tensor at the hook; top k features per token. */
	async encode(residual: Ort.Tensor, rows: number, k: number): Promise<EncodedTokens> {
		this.lastTokens = rows;
		this.lastOnGpu = !!this.encoder && residual.location === 'gpu-buffer';
		if (this.lastOnGpu) return this.encoder!.encodeTopK(residual.gpuBuffer as GPUBuffer, rows, k);
		const { dIn, dSae } = this.sae.cfg;
		let x: Float32Array;
		if (residual.location === 'gpu-buffer')
			x = new Float32Array(await readBuffer(this.device!, residual.gpuBuffer as GPUBuffer, rows * dIn * 4));
		else x = (residual.data as Float32Array).subarray(0, rows * dIn);
		const acts = this.sae.encode(x, rows);
		this.cpuActs = acts;
		k = Math.min(k, dSae);
		const ids = new Uint32Array(rows * k);
		const values = new Float32Array(rows * k);
		for (let t = 0; t < rows; t++)
			topK(acts.subarray(t * dSae, (t + 1) * dSae), k).forEach(([i, v], j) => {
				ids[t * k + j] = i;
				values[t * k + j] = v;
			});
		return { tokens: rows, k, ids, values };
	}

	/**
	 * Steers the residual at the hook in place. Clamp specs need the SAE's activations of these very
	 * rows, so the encoder runs first. `skipPosition`: a row to leave alone (BOS), or -1.
	 */
	async steer(residual: Ort.Tensor, rows: number, specs: SteerFeature[], skipPosition: number) {
		if (!specs.length) return;
		const clamp = specs.some((s) => s.mode === 'clamp');
		if (this.steerKernel && this.encoder && residual.location === 'gpu-buffer') {
			const buf = residual.gpuBuffer as GPUBuffer;
			if (clamp) await this.encoder.encodeTopK(buf, rows, 1);
			const { dIn, dSae } = this.sae.cfg;
			this.steerKernel.apply(
				buf,
				rows,
				dIn,
				() => steerDirections(this.sae, specs),
				specs,
				JSON.stringify(specs),
				this.encoder.activationsBufferOrDummy(),
				dSae,
				skipPosition
			);
			return;
		}
		const { dIn } = this.sae.cfg;
		const x = (residual.data as Float32Array).subarray(0, rows * dIn); // the wasm path: ORT's CPU tensor, edited in place
		steerReference(this.sae, x, rows, specs, clamp ? this.sae.encode(x, rows) : null, skipPosition);
	}

	/** Reconstruction error of the last `encode` against the same residual (BOS left out). */
	async reconstruction(residual: Ort.Tensor, rows: number): Promise<ReconMetrics> {
		if (this.recon && this.encoder && residual.location === 'gpu-buffer')
			return this.recon.metrics(residual.gpuBuffer as GPUBuffer, this.encoder.activationsBuffer, this.encoder.undoBuffer, rows);
		const { dIn } = this.sae.cfg;
		const x =
			residual.location === 'gpu-buffer'
				? new Float32Array(await readBuffer(this.device!, residual.gpuBuffer as GPUBuffer, rows * dIn * 4))
				: (residual.data as Float32Array).subarray(0, rows * dIn);
		return metricsOf(x, this.sae.decode(this.cpuActs!, rows, this.sae.preprocess(x, rows)), rows, 1, dIn);
	}

	/** Feature f's activation at each token of the last encoded text. */
	async activations(f: number): Promise<number[]> {
		if (this.encoder) return [...(await this.encoder.readFeature(f, this.lastTokens))];
		const { dSae } = this.sae.cfg;
		return Array.from({ length: this.lastTokens }, (_, t) => this.cpuActs?.[t * dSae + f] ?? 0);
	}

	/** Every feature's activation at every token of the last encoded text, [tokens, d_sae] (kept by the explorer for its cards). */
	async allActivations(): Promise<Float32Array> {
		if (this.lastOnGpu) return this.encoder!.readActivations(this.lastTokens);
		return this.cpuActs!.slice(0, this.lastTokens * this.sae.cfg.dSae);
	}

	async logitEffects(f: number, k: number): Promise<{ positive: RankedItem[]; negative: RankedItem[] }> {
		if (this.inspector) return this.inspector.logitEffects(f, k);
		const e = logitEffectsReference(this.sae, f, this.unembedding);
		return {
			positive: ranked(e, k),
			negative: ranked(
				e.map((v) => -v),
				k
			).map((x) => ({ id: x.id, value: -x.value }))
		};
	}

	async nearest(f: number, k: number): Promise<RankedItem[]> {
		if (this.inspector) return this.inspector.nearest(f, k);
		const cos = decoderCosinesReference(this.sae, f);
		cos[f] = -Infinity;
		return ranked(cos, k);
	}

	/** Accumulates statistics over a corpus; call `add` after each `encode` of a context. */
	async statsRun(): Promise<{ add(rows: number, context: number): void; finish(): Promise<FeatureStats> }> {
		const { dSae } = this.sae.cfg;
		if (this.encoder && this.device) {
			const gpu = await FeatureStatsGpu.create(this.device, dSae);
			return {
				add: (rows, context) => gpu.accumulate(this.encoder!.activationsBuffer, rows, context),
				finish: async () => {
					const s = await gpu.read();
					gpu.destroy();
					return s;
				}
			};
		}
		const stats = emptyStats(dSae);
		return { add: (rows, context) => accumulateReference(stats, this.cpuActs!, rows, context), finish: async () => stats };
	}

	destroy() {
		this.encoder?.destroy();
		this.inspector?.destroy();
		this.recon?.destroy();
		this.steerKernel?.destroy();
	}
}

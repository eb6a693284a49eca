/**
 * SAE training as the engine offers it: a run on the loaded model's activations (new, or resumed
 * from its IndexedDB checkpoint), Pause and Stop, the list of runs, and a trained SAE exported as
 * SAELens files or opened in the explorer. The loop itself is train/train-loop.ts.
 */
import { LoupeError } from '../errors';
import type { ModelSession } from '../model/session';
import { corpusContexts } from '../model/corpus-contexts';
import type { SaeExplorer, SaeInfo } from '../sae/explorer';
import { summarizeRun, toSaeLens, type TrainConfig, type TrainProgress, type TrainRunSummary } from './training-run';
import { trainSae } from './train-loop';
import { deleteTrainRun, getTrainRun, listTrainRuns } from '../store/db';

export class TrainerService {
	private flags = { pause: false, stop: false };

	constructor(
		private session: ModelSession,
		private explorer: SaeExplorer
	) {}

	/**
	 * Trains an SAE on the loaded model's activations at `cfg.hook` (or resumes run `resumeId` from
	 * its last checkpoint). Resolves when it finishes, is paused or is stopped; `onProgress` hears
	 * the phases and, in small batches, the metrics.
	 */
	async train(cfg: TrainConfig, resumeId: string | null, onProgress: (p: TrainProgress) => void): Promise<TrainRunSummary> {
		const m = this.session.requireModel();
		if (m.runner.backend !== 'webgpu')
			throw new LoupeError(
				'no-webgpu',
				'Training runs on the GPU, and this browser has no WebGPU (or the model runs on the CPU).',
				'Open Loupe in a browser with WebGPU to train SAEs.'
			);
		if (m.source.dtype !== 'float32')
			throw new LoupeError(
				'model-failed',
				`${m.info.name} computes its residual in ${m.source.dtype}; the trainer reads fp32.`,
				'Open the fp32 export of this model.'
			);
		const cp = resumeId ? await getTrainRun(resumeId) : undefined;
		if (resumeId && !cp) throw new LoupeError('not-found', 'That training run is not in this browser any more.', 'Start a new run.');
		if (cp && cp.cfg.model !== m.info.id)
			throw new LoupeError('model-failed', `That run trains on ${cp.cfg.model}, not ${m.info.id}.`, `Load ${cp.cfg.model} to resume it.`);
		const c = cp?.cfg ?? { ...cfg, model: m.info.id };
		if (!(
			c.width >= 1 &&
			c.batch >= 1 &&
			c.tokens >= c.batch &&
			(c.arch !== 'topk' || (c.k >= 1 && c.k <= c.width)) &&
			(c.arch !== 'jumprelu' || c.bandwidth > 0)
		))
			throw new LoupeError(
				'model-failed',
				'These settings cannot train: width, batch and tokens must be positive (tokens ≥ batch), k between 1 and the width, and the JumpReLU bandwidth positive.',
				'Change the settings.'
			);
		const hook = this.session.canonical(m, c.hook);
		return this.session.locked(async () => {
			this.flags = { pause: false, stop: false };
			try {
				await this.session.ensureCuts(m, [hook]);
				return await trainSae(
					{
						runner: m.runner,
						device: await this.session.gpuDevice(),
						hook,
						dModel: m.source.shape.dModel,
						corpus: (spec, onCorpus) => corpusContexts(this.session, m, spec, (p) => onCorpus(p.done, p.total)),
						flags: this.flags
					},
					c,
					cp,
					onProgress
				);
			} finally {
				this.flags = { pause: false, stop: false };
			}
		});
	}

	pause() {
		this.flags.pause = true;
	}

	stop() {
		this.flags.stop = true;
	}

	async runs(): Promise<TrainRunSummary[]> {
		return (await listTrainRuns().catch(() => [])).map(summarizeRun);
	}

	async deleteRun(id: string) {
		await deleteTrainRun(id);
	}

	/** A trained SAE as SAELens files, to download (cfg.json + sae_weights.safetensors + sparsity.safetensors). */
	async exportSae(id: string): Promise<{ cfgJson: string; safetensors: Uint8Array; sparsity: Uint8Array }> {
		return toSaeLens(await this.checkpoint(id));
	}

	/** Opens a trained SAE in the explorer and the steering panel, through its SAELens files. */
	async openSae(id: string): Promise<SaeInfo> {
		this.session.requireModel();
		const { cfgJson, safetensors, sparsity } = toSaeLens(await this.checkpoint(id));
		const bytes = (b: Uint8Array) => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
		return this.explorer.attach(
			[
				{ name: 'cfg.json', buffer: new TextEncoder().encode(cfgJson).buffer as ArrayBuffer },
				{ name: 'sae_weights.safetensors', buffer: bytes(safetensors) },
				// Its densities from training: the card and the density filter have them before any corpus run.
				{ name: 'sparsity.safetensors', buffer: bytes(sparsity) }
			],
			`trained:${id}`
		);
	}

	private async checkpoint(id: string) {
		const cp = await getTrainRun(id);
		if (!cp) throw new LoupeError('not-found', 'That training run is not in this browser any more.', 'Train it again.');
		return cp;
	}
}

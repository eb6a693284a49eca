/**
 * How well an attached transcoder predicts its output hook on a prompt: the model's own vectors at
 * the input hook (x, blocks.L.hook_mlp_in) and at the output hook (y, blocks.L.hook_mlp_out) are
 * read back, and ŷ = Transcoder.forward(x) (features, b_dec and the skip connection) is measured
 * against y with sae/reconstruction.ts's metrics: MSE, the fraction of MLP-output variance
 * explained, cosine (BOS left out). A prompt is a few hundred vectors, so this runs on the CPU.
 */
import type * as Ort from 'onnxruntime-web';
import { readBuffer } from '../gpu/buffers';
import { metricsOf, type ReconMetrics } from './reconstruction';
import type { Transcoder } from './transcoder';

/** The first rows·width floats of a hook's tensor, on the CPU (a copy). */
export async function hookRows(device: GPUDevice | null, t: Ort.Tensor, rows: number, width: number): Promise<Float32Array> {
	if (t.location === 'gpu-buffer') {
		if (!device) throw new Error('a GPU tensor without a device');
		return new Float32Array(await readBuffer(device, t.gpuBuffer as GPUBuffer, rows * width * 4));
	}
	return (t.data as Float32Array).slice(0, rows * width);
}

/** Metrics of the transcoder's prediction of y from x (both [rows, ·] as the model computed them). */
export function transcoderReconstruction(tc: Transcoder, x: Float32Array, y: Float32Array, rows: number, first = 1): ReconMetrics {
	const { out } = tc.forward(x, rows);
	return metricsOf(y, out, rows, first, tc.cfg.dOut);
}

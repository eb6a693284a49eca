/**
 * The peer the attribution is measured against, and an independent check of its backward passes:
 * the same frozen replacement model written as a TensorFlow.js function and differentiated by its
 * autograd (WebGPU backend). For a batch of B targets the forward is run on B copies of the
 * residual additions — the embeddings, and what each layer's MLP writes (features, error, b_dec) —
 * copy b producing target b's input; the gradient of the sum with respect to each copy is that
 * target's ∂input/∂(what is written), contracted with the source vectors into edges, as Loupe does.
 */
import type { LinearContext } from './linear-model';
import type { ActiveFeature } from './replacement';
import type { SalientLogit } from './salient-logits';
import type { Transcoder } from './transcoder';

type Tf = typeof import('@tensorflow/tfjs-core');

export async function tfjsWebgpu(): Promise<Tf> {
	const tf = await import('@tensorflow/tfjs-core');
	await import('@tensorflow/tfjs-core/dist/register_all_gradients'); // tfjs-core alone has no gradients
	await import('@tensorflow/tfjs-backend-webgpu');
	if (!(await tf.setBackend('webgpu'))) throw new Error('TensorFlow.js could not start its WebGPU backend here.');
	await tf.ready();
	return tf;
}

/** Transposed (in, out) copy of an (out, in) matrix, for x · Wᵀ as a plain matMul. */
const transpose = (w: Float32Array, nOut: number, nIn: number) => {
	const t = new Float32Array(nOut * nIn);
	for (let o = 0; o < nOut; o++) for (let i = 0; i < nIn; i++) t[i * nOut + o] = w[o * nIn + i];
	return t;
};

/**
 * Edge rows [targets × (features, errors, tokens)] for every feature and logit target (rows not
 * asked for stay 0), like `computeEdges` (without bias), by TF.js autograd. Returns the rows and
 * the time spent (ms).
 */
export async function tfjsEdges(
	tf: Tf,
	ctx: LinearContext,
	features: ActiveFeature[],
	logits: SalientLogit[],
	transcoders: Transcoder[],
	batchSize: number,
	/** Only these target rows (features by index, logit k as N + k); every target by default. */
	only?: number[]
): Promise<{ edges: Float32Array; ms: number }> {
	const { nPos: P, dim: D, nLayers: L, nHeads: H, nKvHeads: KV, headSize: hs } = ctx;
	// The bench's peer models llama2.c's context only (not an export's centring, constants or wide heads).
	if (ctx.centred || ctx.constants || H * hs !== D) throw new Error('the TF.js peer runs llama2.c-shaped contexts only');
	const N = features.length;
	const nSources = N + L * P + P;
	const targets = only ?? [...features.map((_, i) => i), ...logits.map((_, k) => N + k)];
	const edges = new Float32Array((N + logits.length) * nSources);
	const t0 = performance.now();
	// Constants: made directly (no intermediates to tidy), disposed at the end.
	const c = {
		woT: ctx.layers.map((l) => tf.tensor2d(transpose(l.wo, D, D), [D, D])),
		wvT: ctx.layers.map((l) => tf.tensor2d(transpose(l.wv, KV * hs, D), [D, KV * hs])),
		wsT: ctx.layers.map((l) => (l.wSkip ? tf.tensor2d(transpose(l.wSkip, D, D), [D, D]) : null)),
		attnScale: ctx.layers.map((l) => tf.tensor2d(Float32Array.from(l.attnScale), [P, D])),
		ffnScale: ctx.layers.map((l) => tf.tensor2d(Float32Array.from(l.ffnScale), [P, D])),
		// Each query head's pattern, [H, P, P]; heads read their kv head through a gather.
		pattern: ctx.layers.map((l) => tf.tensor3d(Float32Array.from(l.pattern), [H, P, P])),
		headToKv: tf.tensor1d(
			Int32Array.from({ length: H }, (_, h) => Math.floor(h / (H / KV))),
			'int32'
		),
		finalScale: tf.tensor1d(Float32Array.from(ctx.finalScale)),
		sources: [ctx.tokens, ...ctx.layers.map((l) => l.sources)].map((s) => ({
			vec: tf.tensor2d(Float32Array.from(s.vectors), [s.pos.length, D]),
			pos: tf.tensor1d(Int32Array.from(s.pos), 'int32'),
			n: s.pos.length,
			nFeatures: s.nFeatures
		}))
	};
	const featureStart = new Int32Array(L + 1);
	for (const f of features) featureStart[f.layer + 1]++;
	for (let l = 0; l < L; l++) featureStart[l + 1] += featureStart[l];

	for (let start = 0; start < targets.length; start += batchSize) {
		const batch = targets.slice(start, start + batchSize);
		const B = batch.length;
		// Read-out masks: for target b, its direction at its position of the stream it reads.
		const masks = Array.from({ length: L + 1 }, () => new Float32Array(B * P * D));
		batch.forEach((t, b) => {
			if (t < N) {
				const f = features[t];
				const tc = transcoders[f.layer];
				for (let d = 0; d < D; d++) masks[f.layer][(b * P + f.pos) * D + d] = tc.wEnc[d * tc.dSae + f.feature];
			} else for (let d = 0; d < D; d++) masks[L][(b * P + P - 1) * D + d] = logits[t - N].vector[d];
		});
		const rows = tf.tidy(() => {
			const mk = masks.map((m) => tf.tensor3d(m, [B, P, D]));
			const inputs = Array.from({ length: L + 1 }, () => tf.zeros([B, P, D]) as import('@tensorflow/tfjs-core').Tensor3D);
			const f = (...adds: import('@tensorflow/tfjs-core').Tensor[]) => {
				let x = adds[0];
				let out = tf.scalar(0);
				for (let l = 0; l < L; l++) {
					const xn = tf.mul(x, c.attnScale[l]);
					const v = tf.reshape(tf.matMul(tf.reshape(xn, [B * P, D]), c.wvT[l]), [B, P, KV, hs]);
					const vh = tf.gather(tf.transpose(v, [0, 2, 1, 3]), c.headToKv, 1); // [B, H, P, hs]
					const z = tf.matMul(tf.tile(tf.expandDims(c.pattern[l], 0), [B, 1, 1, 1]) as import('@tensorflow/tfjs-core').Tensor4D, vh);
					const attn = tf.matMul(tf.reshape(tf.transpose(z, [0, 2, 1, 3]), [B * P, D]), c.woT[l]);
					x = tf.add(x, tf.reshape(attn, [B, P, D]));
					const mlpIn = tf.mul(x, c.ffnScale[l]);
					out = tf.add(out, tf.sum(tf.mul(mlpIn, mk[l])));
					const ws = c.wsT[l];
					if (ws) x = tf.add(x, tf.reshape(tf.matMul(tf.reshape(mlpIn, [B * P, D]), ws), [B, P, D]));
					x = tf.add(x, adds[l + 1]);
				}
				return tf.add(out, tf.sum(tf.mul(tf.mul(x, c.finalScale), mk[L]))) as import('@tensorflow/tfjs-core').Scalar;
			};
			const grads = tf.grads(f)(inputs);
			// grads[0] is ∂/∂(embeddings), grads[l + 1] ∂/∂(what layer l's MLP writes): contract with the sources.
			return grads.map((g, i) => {
				const s = c.sources[i];
				const atPos = tf.gather(g, s.pos, 1); // [B, n, D]
				return tf.sum(tf.mul(atPos, s.vec), 2); // [B, n]
			});
		});
		const data = await Promise.all(rows.map((r) => r.data() as Promise<Float32Array>));
		tf.dispose(rows);
		batch.forEach((t, b) => {
			const row = t * nSources;
			for (let p = 0; p < P; p++) edges[row + N + L * P + p] = data[0][b * P + p];
			for (let l = 0; l < L; l++) {
				const s = c.sources[l + 1];
				for (let j = 0; j < s.nFeatures; j++) edges[row + featureStart[l] + j] = data[l + 1][b * s.n + j];
				for (let p = 0; p < P; p++) edges[row + N + l * P + p] = data[l + 1][b * s.n + s.nFeatures + p];
			}
		});
	}
	const ms = performance.now() - t0;
	tf.dispose([
		...c.woT,
		...c.wvT,
		...c.wsT.filter((x) => x !== null),
		...c.attnScale,
		...c.ffnScale,
		...c.pattern,
		c.headToKv,
		c.finalScale
	]);
	for (const s of c.sources) tf.dispose([s.vec, s.pos]);
	return { edges, ms };
}

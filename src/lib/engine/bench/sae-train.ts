/**
 * Training throughput: Loupe's WGSL trainer against the same TopK SAE, batch and optimiser written
 * in TensorFlow.js on its WebGPU backend, in the same page on the same adapter. Both take Adam
 * steps on batches gathered from an activation store already on the GPU, with unit decoder rows.
 * Tokens/s after a warm-up, median of a few timed runs; `ratio` = Loupe over TF.js.
 */
import { SaeTrainer } from '../gpu/sae-trainer';
import { storageFrom } from '../gpu/buffers';
import { initParams, type TrainShape } from '../train/reference';
import { seededRandom } from '../sample/prng';
import { benchLine, median, type BenchLine } from './bench-line';

interface Shape {
	d: number;
	n: number;
	batch: number;
	k: number;
}

export async function benchSaeTraining(shapes: Shape[], steps: number, runs: number): Promise<BenchLine[]> {
	const tf = await import('@tensorflow/tfjs-core');
	await import('@tensorflow/tfjs-core/dist/register_all_gradients'); // tfjs-core alone has no gradients
	await import('@tensorflow/tfjs-backend-webgpu');
	if (!(await tf.setBackend('webgpu'))) throw new Error('TensorFlow.js could not start its WebGPU backend here.');
	await tf.ready();
	const adapter = await navigator.gpu.requestAdapter();
	if (!adapter) throw new Error('no WebGPU adapter');
	const device = await adapter.requestDevice({
		requiredLimits: { maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize }
	});
	const lines: BenchLine[] = [];
	for (const sh of shapes) {
		const random = seededRandom(7);
		const rows = 8192;
		const data = Float32Array.from({ length: rows * sh.d }, () => random() * 2 - 1);
		const shape: TrainShape = { d: sh.d, n: sh.n, arch: 'topk', k: sh.k, l1: 0 };
		const params = initParams(shape, random, new Float32Array(sh.d));
		const batches = Array.from({ length: steps }, () => Uint32Array.from({ length: sh.batch }, () => Math.floor(random() * rows)));
		const lr = 1e-3;

		// Loupe: WGSL kernels.
		const trainer = await SaeTrainer.create(device, shape, sh.batch, params);
		const store = storageFrom(device, data, 'bench.store');
		trainer.setStore(store, rows);
		const loupeRun = async () => {
			const t0 = performance.now();
			for (const b of batches) trainer.step(b, lr);
			await device.queue.onSubmittedWorkDone();
			return (steps * sh.batch * 1000) / (performance.now() - t0);
		};

		// TF.js: the same forward, loss and Adam through autograd.
		const tStore = tf.tensor2d(data, [rows, sh.d]);
		const wEnc = tf.variable(tf.tensor2d(params.wEnc, [sh.d, sh.n]));
		const bEnc = tf.variable(tf.tensor1d(params.bEnc));
		const wDec = tf.variable(tf.tensor2d(params.wDec, [sh.n, sh.d]));
		const bDec = tf.variable(tf.tensor1d(params.bDec));
		const opt = tf.train.adam(lr, 0.9, 0.999, 1e-8);
		// TopK has no gradient in TF.js; the selection threshold is a constant for autograd anyway.
		const kthOf = tf.customGrad((p) => ({
			value: tf.min(tf.topk(p as import('@tensorflow/tfjs-core').Tensor2D, sh.k).values, 1, true),
			gradFunc: () => tf.zerosLike(p as import('@tensorflow/tfjs-core').Tensor)
		}));
		const tfStep = (idx: Uint32Array) =>
			tf.tidy(() => {
				const x = tf.gather(tStore, tf.tensor1d(Int32Array.from(idx), 'int32'));
				opt.minimize(
					() => {
						const pre = tf.add(tf.matMul(tf.sub(x, bDec), wEnc), bEnc);
						const kth = kthOf(pre);
						const acts = tf.mul(tf.relu(pre), tf.cast(tf.greaterEqual(pre, kth), 'float32'));
						const err = tf.sub(tf.add(tf.matMul(acts, wDec), bDec), x);
						return tf.mean(tf.sum(tf.square(err), 1)) as unknown as import('@tensorflow/tfjs-core').Scalar;
					},
					false,
					[wEnc, bEnc, wDec, bDec]
				);
				wDec.assign(tf.div(wDec, tf.norm(wDec, 'euclidean', 1, true)));
			});
		const tfRun = async () => {
			const t0 = performance.now();
			for (const b of batches) tfStep(b);
			await wDec.data(); // wait for the GPU
			return (steps * sh.batch * 1000) / (performance.now() - t0);
		};

		await loupeRun(); // warm-up: pipelines, buffers
		await tfRun(); // warm-up: shader compilation
		const ours: number[] = [];
		const theirs: number[] = [];
		for (let r = 0; r < runs; r++) {
			ours.push(await loupeRun());
			theirs.push(await tfRun());
		}
		lines.push(
			benchLine(
				{
					bench: 'sae_train_topk',
					shape: `d_in=${sh.d},d_sae=${sh.n},batch=${sh.batch},k=${sh.k},${steps} steps`,
					unit: 'tokens/s',
					value: median(ours),
					peer: 'TensorFlow.js webgpu (autograd + Adam)',
					peerValue: median(theirs)
				},
				{ decimals: 0 }
			)
		);
		trainer.destroy();
		store.destroy();
		tf.dispose([tStore, wEnc, bEnc, wDec, bDec]);
		opt.dispose();
	}
	device.destroy();
	return lines;
}

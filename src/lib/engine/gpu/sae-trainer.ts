/**
 * Trains an SAE on the GPU (shaders/sae_train.wgsl, shaders/adam.wgsl): activations sit in a store
 * buffer, each step gathers a shuffled batch of rows from it, runs forward and backward as dense
 * kernels, and applies Adam; TopK SAEs renormalise decoder rows after each step. Parameters,
 * gradients and Adam moments never leave the GPU; metrics are small read-backs.
 * Transcoders (shape.dOut set): each store row is the input hook's vector then the target hook's,
 * [d_in + d_out] (e.g. blocks.L.hook_mlp_in | blocks.L.hook_mlp_out, paired per token); the two are
 * scaled apart (each to E‖·‖² = its width), and a skip connection W_skip is one more parameter.
 * Reference: ../train/reference.ts.
 */
import trainShader from '../../../../shaders/sae_train.wgsl?raw';
import adamShader from '../../../../shaders/adam.wgsl?raw';
import { computePipeline, createStorage, packUniform, readBuffer, storageFrom, uniformBuffer } from './buffers';
import { ADAM, auxTerms, isTranscoderShape, outWidth, type SaeParams, type TrainShape } from '../train/reference';

// Which bindings each entry point reads or writes ([group, binding]); with layout 'auto' a pipeline
// keeps only those, so each stays within 8 storage buffers.
const GROUP0 = [
	'store',
	'rows',
	'w_enc',
	'b_enc',
	'w_dec',
	'b_dec',
	'pre',
	'acts',
	'err',
	'norms',
	'p',
	'log_threshold',
	'w_skip'
] as const;
const GROUP1 = [
	'g_w_enc',
	'g_b_enc',
	'g_w_dec',
	'g_b_dec',
	'dpre',
	'stats',
	'sel',
	'since_fired',
	'aux_sel',
	'aux_acts',
	'aux_err',
	'offsets',
	'live',
	'g_log_threshold',
	'dthr',
	'g_w_skip'
] as const;
type Name = (typeof GROUP0)[number] | (typeof GROUP1)[number];
const USES: Record<string, Name[]> = {
	encode: ['store', 'rows', 'w_enc', 'b_enc', 'b_dec', 'pre', 'p'],
	activate: ['pre', 'acts', 'p', 'sel', 'since_fired', 'aux_sel', 'aux_acts', 'log_threshold'],
	activate_aux: ['pre', 'acts', 'p', 'sel', 'since_fired', 'aux_sel', 'aux_acts'],
	decode: ['store', 'rows', 'w_dec', 'b_dec', 'acts', 'err', 'p', 'sel', 'w_skip'],
	decode_aux: ['w_dec', 'err', 'p', 'aux_sel', 'aux_acts', 'aux_err'],
	decoder_norms: ['w_dec', 'norms', 'p'],
	grad_pre: ['pre', 'acts', 'err', 'w_dec', 'norms', 'p', 'dpre', 'log_threshold', 'dthr'],
	grad_threshold: ['p', 'log_threshold', 'g_log_threshold', 'dthr'],
	grad_pre_aux: ['w_dec', 'p', 'dpre', 'aux_sel', 'aux_acts', 'aux_err'],
	grad_b_enc: ['acts', 'p', 'dpre', 'g_b_enc', 'since_fired', 'aux_acts', 'offsets'],
	scan_offsets: ['p', 'offsets'],
	fill_live: ['acts', 'p', 'aux_acts', 'offsets', 'live'],
	grad_w_dec: ['acts', 'err', 'w_dec', 'norms', 'p', 'g_w_dec', 'offsets', 'live'],
	grad_w_dec_topk: ['acts', 'err', 'p', 'g_w_dec', 'aux_acts', 'aux_err', 'offsets', 'live'],
	grad_w_enc: ['store', 'rows', 'b_dec', 'p', 'dpre', 'g_w_enc', 'offsets', 'live'],
	grad_b_dec: ['err', 'w_enc', 'p', 'g_b_enc', 'g_b_dec'],
	grad_w_skip: ['store', 'rows', 'err', 'p', 'g_w_skip'],
	normalize_rows: ['w_dec', 'p'],
	store_sums: ['store', 'p', 'stats'],
	batch_stats: ['store', 'rows', 'err', 'p', 'stats', 'aux_err']
};

export interface StepMetrics {
	mse: number; // (1/B) Σ ‖x̂ − x‖²
	explainedVariance: number; // 1 − Σ‖err‖² / Σ‖x − x̄‖² over the batch
	l0: number; // active latents per token
	/** AuxK loss of the batch (α · scale · (1/B) Σ‖aux_err‖²; 0 when no latent is dead or AuxK is off). */
	aux: number;
	/** Per latent: in how many of the batch's tokens it was active. */
	fires: Uint32Array;
	/** Per latent: training tokens since it last fired (counted on the GPU every step). */
	sinceFired: Uint32Array;
	/** Latents that fired in none of the last `deadAfter` tokens. */
	dead: number;
}

export class SaeTrainer {
	private buffers: Record<Name, GPUBuffer>;
	private moments: { m: GPUBuffer; v: GPUBuffer }[];
	private bindGroups = new Map<string, GPUBindGroup[]>();
	private t = 0;
	private storeRows = 0;
	/** AuxK this step: dead latents per row and the loss weight α·min(dead/k_aux, 1), from the last dead count. */
	private aux = { k: 0, weight: 0 };
	/** A latent is dead after firing in none of this many tokens. */
	private deadAfter = 10_000_000;
	/** The store is read times this (see fitToStore); a transcoder's target times scaleOut. */
	private scale = 1;
	private scaleOut = 1;

	private constructor(
		private device: GPUDevice,
		readonly shape: TrainShape,
		readonly batch: number,
		private pipelines: Record<string, GPUComputePipeline>,
		private adamPipeline: GPUComputePipeline,
		params: SaeParams
	) {
		const { d, n } = shape;
		const m = outWidth(shape);
		const B = batch;
		const f = (len: number, label: string) => createStorage(device, len * 4, `train.${label}`);
		this.buffers = {
			store: f(this.stride, 'store'),
			rows: f(B, 'rows'),
			w_enc: storageFrom(device, params.wEnc, 'train.w_enc'),
			b_enc: storageFrom(device, params.bEnc, 'train.b_enc'),
			w_dec: storageFrom(device, params.wDec, 'train.w_dec'),
			b_dec: storageFrom(device, params.bDec, 'train.b_dec'),
			pre: f(B * n, 'pre'),
			acts: f(B * n, 'acts'),
			err: f(B * m, 'err'),
			norms: f(n, 'norms'),
			p: uniformBuffer(device, this.uniformWords(0)),
			g_w_enc: f(d * n, 'g_w_enc'),
			g_b_enc: f(n, 'g_b_enc'),
			g_w_dec: f(n * m, 'g_w_dec'),
			g_b_dec: f(m, 'g_b_dec'),
			dpre: f(B * n, 'dpre'),
			stats: f(Math.max(4 * m, 2 * this.stride), 'stats'),
			sel: f(B * Math.max(1, shape.k), 'sel'),
			since_fired: f(n, 'since_fired'),
			aux_sel: f(B * Math.max(1, this.auxKMax), 'aux_sel'),
			aux_acts: f(this.auxKMax ? B * n : 1, 'aux_acts'),
			aux_err: f(this.auxKMax ? B * m : 1, 'aux_err'),
			offsets: f(n + 1, 'offsets'),
			// Live (row, latent) pairs at most: k + k_aux per row for TopK, every latent for ReLU.
			live: f(B * (shape.arch === 'topk' ? shape.k + this.auxKMax : n), 'live'),
			log_threshold: params.logThreshold ? storageFrom(device, params.logThreshold, 'train.log_threshold') : f(1, 'log_threshold'),
			g_log_threshold: f(this.jump ? n : 1, 'g_log_threshold'),
			dthr: f(this.jump ? B * n : 1, 'dthr'),
			w_skip: params.wSkip ? storageFrom(device, params.wSkip, 'train.w_skip') : f(1, 'w_skip'),
			g_w_skip: f(this.skip ? m * d : 1, 'g_w_skip')
		};
		this.moments = this.paramLengths.map((len, i) => ({ m: f(len, `adam.m${i}`), v: f(len, `adam.v${i}`) }));
	}

	static async create(device: GPUDevice, shape: TrainShape, batch: number, params: SaeParams): Promise<SaeTrainer> {
		const pipelines: Record<string, GPUComputePipeline> = {};
		for (const entry of Object.keys(USES)) pipelines[entry] = await computePipeline(device, trainShader, 'sae_train', entry);
		const adam = await computePipeline(device, adamShader, 'adam', 'adam');
		return new SaeTrainer(device, shape, batch, pipelines, adam, params);
	}

	private get jump(): boolean {
		return this.shape.arch === 'jumprelu';
	}

	/** A transcoder with a skip connection (W_skip is a parameter). */
	private get skip(): boolean {
		return isTranscoderShape(this.shape) && Boolean(this.shape.skip);
	}

	/** The width of a store row: d (an SAE), d + d_out (a transcoder: input, then target). */
	get stride(): number {
		return isTranscoderShape(this.shape) ? this.shape.d + outWidth(this.shape) : this.shape.d;
	}

	/** The parameters Adam steps, in order: W_enc, b_enc, W_dec, b_dec (then JumpReLU's log θ, then W_skip). */
	private get paramKeys(): ('wEnc' | 'bEnc' | 'wDec' | 'bDec' | 'logThreshold' | 'wSkip')[] {
		return ['wEnc', 'bEnc', 'wDec', 'bDec', ...(this.jump ? (['logThreshold'] as const) : []), ...(this.skip ? (['wSkip'] as const) : [])];
	}

	private get paramLengths(): number[] {
		const { d, n } = this.shape;
		const m = outWidth(this.shape);
		const len = { wEnc: d * n, bEnc: n, wDec: n * m, bDec: m, logThreshold: n, wSkip: m * d };
		return this.paramKeys.map((k) => len[k]);
	}

	/** The parameters' buffers and their gradients', in paramKeys' order. */
	private get parameterBuffers(): GPUBuffer[] {
		const b = this.buffers;
		const buf = { wEnc: b.w_enc, bEnc: b.b_enc, wDec: b.w_dec, bDec: b.b_dec, logThreshold: b.log_threshold, wSkip: b.w_skip };
		return this.paramKeys.map((k) => buf[k]);
	}

	private get gradientBuffers(): GPUBuffer[] {
		const b = this.buffers;
		const buf = { wEnc: b.g_w_enc, bEnc: b.g_b_enc, wDec: b.g_w_dec, bDec: b.g_b_dec, logThreshold: b.g_log_threshold, wSkip: b.g_w_skip };
		return this.paramKeys.map((k) => buf[k]);
	}

	/** k_aux at most: the shape's, TopK only. */
	private get auxKMax(): number {
		return this.shape.arch === 'topk' && this.shape.auxCoeff ? Math.min(this.shape.auxK ?? 0, this.shape.n) : 0;
	}

	private uniformWords(storeRows: number): (number | { f32: number })[] {
		const s = this.shape;
		return [
			this.batch,
			s.d,
			s.n,
			s.arch === 'topk' ? s.k : 0,
			{ f32: s.arch === 'relu' ? s.l1 : 0 },
			{ relu: 0, topk: 1, jumprelu: 2 }[s.arch],
			storeRows,
			this.aux.k,
			{ f32: this.aux.weight },
			this.deadAfter,
			{ f32: this.jump ? (s.l0 ?? 0) : 0 },
			{ f32: this.jump ? (s.bandwidth ?? 1e-3) : 0 },
			{ f32: this.scale },
			outWidth(s),
			this.stride,
			isTranscoderShape(s) ? s.d : 0,
			{ f32: isTranscoderShape(s) ? this.scaleOut : this.scale },
			isTranscoderShape(s) ? 1 : 0,
			this.skip ? 1 : 0,
			0
		];
	}

	private writeUniforms() {
		this.device.queue.writeBuffer(this.buffers.p, 0, packUniform(this.uniformWords(this.storeRows)));
	}

	/** The activation store: a GPU buffer of [rows, stride] fp32 (harvested at a hook, or uploaded; a transcoder's rows are x | y). */
	setStore(store: GPUBuffer, rows: number) {
		this.buffers.store = store;
		this.storeRows = rows;
		this.writeUniforms();
		this.bindGroups.clear();
	}

	/** The store is read times `scale` (1: as it is); a transcoder's target times `scaleOut`. */
	setScale(scale: number, scaleOut = scale) {
		this.scale = scale;
		this.scaleOut = scaleOut;
		this.writeUniforms();
	}

	/** The scales the store is read with: input, and a transcoder's target (an SAE's is the input's). */
	get scales(): { in: number; out: number } {
		return { in: this.scale, out: isTranscoderShape(this.shape) ? this.scaleOut : this.scale };
	}

	/**
	 * A new run's start from the store, in one pass over it (Σx and Σx² per dimension, d_in sums each
	 * read back, never the activations): the scale that brings the store to E‖x‖² = d_in (SAELens's
	 * "expected_average_only_in", so that learning rates and sparsity coefficients mean the same on
	 * every model), and b_dec ← the mean of the scaled store. Returns the scale.
	 */
	async fitToStore(): Promise<number> {
		const { d } = this.shape;
		const stride = this.stride;
		const enc = this.device.createCommandEncoder({ label: 'store sums' });
		const pass = enc.beginComputePass();
		this.dispatch(pass, 'store_sums', Math.ceil(stride / 64));
		pass.end();
		this.device.queue.submit([enc.finish()]);
		const sums = new Float32Array(await readBuffer(this.device, this.buffers.stats, 2 * stride * 4));
		const rows = Math.max(1, this.storeRows);
		// Columns [from, to) of a store row: the scale that brings them to E‖·‖² = their width.
		const scaleOf = (from: number, to: number) => {
			const meanSq = sums.subarray(stride + from, stride + to).reduce((a, x) => a + x, 0) / rows;
			return meanSq > 0 ? Math.sqrt((to - from) / meanSq) : 1;
		};
		const scale = scaleOf(0, d);
		// b_dec ← the mean of what is decoded: the input (an SAE), the target (a transcoder).
		const [from, to] = isTranscoderShape(this.shape) ? [d, stride] : [0, d];
		const scaleOut = isTranscoderShape(this.shape) ? scaleOf(from, to) : scale;
		this.setScale(scale, scaleOut);
		this.device.queue.writeBuffer(
			this.buffers.b_dec,
			0,
			sums.subarray(from, to).map((x) => (x / rows) * scaleOut)
		);
		return scale;
	}

	/** A latent counts as dead once it has not fired for more than `tokens` training tokens. */
	setDeadAfter(tokens: number) {
		this.deadAfter = Math.max(0, Math.min(0x7fffffff, Math.floor(tokens)));
		this.writeUniforms();
	}

	/** The dead-latent clock (a checkpoint's, or a test's); AuxK follows the dead count it implies. */
	setSinceFired(tokens: Uint32Array) {
		this.device.queue.writeBuffer(this.buffers.since_fired, 0, tokens as Uint32Array<ArrayBuffer>);
		this.updateAux(tokens.reduce((a, t) => a + (t > this.deadAfter ? 1 : 0), 0));
	}

	/** AuxK's k_aux and weight for `dead` dead latents (as reference.auxTerms). */
	private updateAux(dead: number) {
		const next = auxTerms(this.shape, dead);
		if (next.k === this.aux.k && next.weight === this.aux.weight) return;
		this.aux = next;
		this.writeUniforms();
	}

	get rows(): number {
		return this.storeRows;
	}

	private groups(entry: string): GPUBindGroup[] {
		let g = this.bindGroups.get(entry);
		if (g) return g;
		const pipe = this.pipelines[entry];
		const used = USES[entry];
		g = [GROUP0, GROUP1]
			.map((names, group) => {
				const entries = names
					.map((name, binding) => ({ name, binding }))
					.filter(({ name }) => used.includes(name))
					.map(({ name, binding }) => ({ binding, resource: { buffer: this.buffers[name] } }));
				return entries.length ? this.device.createBindGroup({ layout: pipe.getBindGroupLayout(group), entries }) : null;
			})
			.filter((x): x is GPUBindGroup => x !== null);
		this.bindGroups.set(entry, g);
		return g;
	}

	private dispatch(pass: GPUComputePassEncoder, entry: string, x: number, y = 1) {
		pass.setPipeline(this.pipelines[entry]);
		this.groups(entry).forEach((g, i) => pass.setBindGroup(i, g));
		pass.dispatchWorkgroups(x, y);
	}

	/** Forward and backward on the batch `rows` (indices into the store): gradients in the g_* buffers. */
	gradients(rows: Uint32Array) {
		const { d, n } = this.shape;
		const m = outWidth(this.shape);
		const B = this.batch;
		this.device.queue.writeBuffer(this.buffers.rows, 0, rows as Uint32Array<ArrayBuffer>);
		const enc = this.device.createCommandEncoder({ label: 'sae-train step' });
		const pass = enc.beginComputePass();
		const c = (x: number) => Math.ceil(x / 64);
		this.dispatch(pass, 'encode', Math.ceil(n / 256), Math.ceil(B / 4));
		this.dispatch(pass, 'activate', B);
		this.dispatch(pass, 'decode', c(m), B);
		if (this.aux.k) {
			this.dispatch(pass, 'activate_aux', B);
			this.dispatch(pass, 'decode_aux', c(m), B);
		}
		this.dispatch(pass, 'decoder_norms', c(n));
		this.dispatch(pass, 'grad_pre', c(n), B);
		if (this.jump) this.dispatch(pass, 'grad_threshold', c(n));
		if (this.aux.k) this.dispatch(pass, 'grad_pre_aux', c(this.aux.k), B);
		// b_enc's gradient, the dead clock and each latent's live rows; then the weight gradients over them.
		this.dispatch(pass, 'grad_b_enc', c(n));
		this.dispatch(pass, 'scan_offsets', 1);
		this.dispatch(pass, 'fill_live', c(n));
		this.dispatch(pass, this.shape.arch === 'topk' ? 'grad_w_dec_topk' : 'grad_w_dec', c(m), n);
		this.dispatch(pass, 'grad_w_enc', c(n), d);
		this.dispatch(pass, 'grad_b_dec', c(m));
		if (this.skip) this.dispatch(pass, 'grad_w_skip', c(d), m);
		this.dispatch(pass, 'batch_stats', c(m));
		pass.end();
		this.device.queue.submit([enc.finish()]);
	}

	/** Adam on every parameter with bias correction; TopK: decoder rows back to unit norm. */
	adam(lr: number) {
		this.t++;
		const c1 = 1 - ADAM.beta1 ** this.t;
		const c2 = 1 - ADAM.beta2 ** this.t;
		const grads = this.gradientBuffers;
		const params = this.parameterBuffers.map((w, i) => [w, grads[i], this.paramLengths[i]] as [GPUBuffer, GPUBuffer, number]);
		const uniforms: GPUBuffer[] = [];
		const enc = this.device.createCommandEncoder({ label: 'adam' });
		const pass = enc.beginComputePass();
		params.forEach(([w, g, len], i) => {
			const u = uniformBuffer(this.device, [
				len,
				0,
				0,
				0,
				{ f32: lr },
				{ f32: ADAM.beta1 },
				{ f32: ADAM.beta2 },
				{ f32: ADAM.eps },
				{ f32: c1 },
				{ f32: c2 },
				0,
				0
			]);
			uniforms.push(u);
			pass.setPipeline(this.adamPipeline);
			pass.setBindGroup(
				0,
				this.device.createBindGroup({
					layout: this.adamPipeline.getBindGroupLayout(0),
					entries: [w, g, this.moments[i].m, this.moments[i].v, u].map((buffer, binding) => ({ binding, resource: { buffer } }))
				})
			);
			const groups = Math.ceil(len / 64);
			pass.dispatchWorkgroups(Math.min(groups, 65535), Math.ceil(groups / 65535));
		});
		if (this.shape.arch !== 'relu') this.dispatch(pass, 'normalize_rows', Math.ceil(this.shape.n / 64));
		pass.end();
		this.device.queue.submit([enc.finish()]);
		this.device.queue.onSubmittedWorkDone().then(() => uniforms.forEach((u) => u.destroy()));
	}

	step(rows: Uint32Array, lr: number) {
		this.gradients(rows);
		this.adam(lr);
	}

	/**
	 * Metrics of the last forward: per-dimension batch sums and the activations (no activations of
	 * the model). Also refreshes AuxK's dead count from the GPU's clock, for the steps that follow.
	 */
	async metrics(): Promise<StepMetrics> {
		const { n } = this.shape;
		const d = outWidth(this.shape); // the stats are over what is decoded (a transcoder's target)
		const B = this.batch;
		const [stats, acts, sinceFired] = await Promise.all([
			readBuffer(this.device, this.buffers.stats, 4 * d * 4).then((b) => new Float32Array(b)),
			readBuffer(this.device, this.buffers.acts, B * n * 4).then((b) => new Float32Array(b)),
			readBuffer(this.device, this.buffers.since_fired, n * 4).then((b) => new Uint32Array(b))
		]);
		const weight = this.aux.weight;
		const dead = sinceFired.reduce((a, t) => a + (t > this.deadAfter ? 1 : 0), 0);
		this.updateAux(dead);
		let sse = 0;
		let sst = 0;
		let saux = 0;
		for (let i = 0; i < d; i++) {
			saux += stats[3 * d + i];
			sse += stats[2 * d + i];
			sst += stats[d + i] - (stats[i] * stats[i]) / B; // Σ(x − x̄)² = Σx² − (Σx)²/B
		}
		let active = 0;
		const fires = new Uint32Array(n);
		for (let b = 0; b < B; b++)
			for (let j = 0; j < n; j++)
				if (acts[b * n + j] > 0) {
					active++;
					fires[j]++;
				}
		// MSE in the model's units (the trainer works on activations times `scale`).
		return {
			mse: sse / B / this.scales.out ** 2,
			explainedVariance: sst > 0 ? 1 - sse / sst : 0,
			l0: active / B,
			aux: (weight * saux) / B,
			fires,
			sinceFired,
			dead
		};
	}

	/** The last batch's activations [B, n] (for tests and checks; training reads only the metrics). */
	readActivations(): Promise<Float32Array> {
		return this.readFloats(this.buffers.acts, this.batch * this.shape.n);
	}

	async readSinceFired(): Promise<Uint32Array> {
		return new Uint32Array(await readBuffer(this.device, this.buffers.since_fired, this.shape.n * 4));
	}

	private readFloats(buf: GPUBuffer, len: number): Promise<Float32Array> {
		return readBuffer(this.device, buf, len * 4).then((b) => new Float32Array(b));
	}

	/** W_enc, b_enc, W_dec, b_dec (and JumpReLU's log θ, a transcoder's W_skip) read from these buffers, in paramKeys' order. */
	private async readParamSet(bufs: GPUBuffer[]): Promise<SaeParams> {
		const data = await Promise.all(this.paramLengths.map((len, i) => this.readFloats(bufs[i], len)));
		const out: Partial<SaeParams> = {};
		this.paramKeys.forEach((k, i) => (out[k] = data[i]));
		return out as SaeParams;
	}

	readParams(): Promise<SaeParams> {
		return this.readParamSet(this.parameterBuffers);
	}

	readGradients(): Promise<SaeParams> {
		return this.readParamSet(this.gradientBuffers);
	}

	/** Adam's step count and moments, for checkpoints. */
	async readState(): Promise<{ t: number; m: Float32Array[]; v: Float32Array[] }> {
		const lens = this.paramLengths;
		return {
			t: this.t,
			m: await Promise.all(this.moments.map((x, i) => this.readFloats(x.m, lens[i]))),
			v: await Promise.all(this.moments.map((x, i) => this.readFloats(x.v, lens[i])))
		};
	}

	restoreState(s: { t: number; m: Float32Array[]; v: Float32Array[] }) {
		this.t = s.t;
		this.moments.forEach((x, i) => {
			this.device.queue.writeBuffer(x.m, 0, s.m[i] as Float32Array<ArrayBuffer>);
			this.device.queue.writeBuffer(x.v, 0, s.v[i] as Float32Array<ArrayBuffer>);
		});
	}

	destroy(keepStore = false) {
		for (const [name, buf] of Object.entries(this.buffers)) if (!(keepStore && name === 'store')) buf.destroy();
		for (const x of this.moments) (x.m.destroy(), x.v.destroy());
	}
}

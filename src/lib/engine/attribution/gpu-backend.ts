/**
 * The attribution's backward passes on the GPU: the `BackwardBackend` of `backend.ts` as WGSL
 * kernels (shaders/attr_*.wgsl), on whatever device it is given (ORT's, in the app). The frozen
 * context (W_o, W_v, W_skip, norm diagonals, patterns, source vectors) is uploaded once; each batch
 * of targets records every dispatch of its pass into one command buffer and reads its edges back
 * once, so a batch costs one submit and one map whatever the depth of the network.
 *
 * References: backward-ops.ts (matTransposeRows, attentionMixBackward, contractSources) and the
 * CPU backend's inject; tests/gpu/attribution-kernels.test.ts compares them.
 */
import matT from '../../../../shaders/attr_mat_t.wgsl?raw';
import attnMix from '../../../../shaders/attr_attn_mix.wgsl?raw';
import contract from '../../../../shaders/attr_contract.wgsl?raw';
import inject from '../../../../shaders/attr_inject.wgsl?raw';
import { computePipeline, createStorage, readBuffer, storageFrom, uniformBuffer } from '../gpu/buffers';
import type { BackwardBackend, Injection } from './backend';
import type { LinearContext, SourceBlock } from './linear-model';

export interface AttrPipelines {
	matT: GPUComputePipeline;
	attnMix: GPUComputePipeline;
	contract: GPUComputePipeline;
	inject: GPUComputePipeline;
}

export async function attrPipelines(device: GPUDevice): Promise<AttrPipelines> {
	const [a, b, c, d] = await Promise.all([
		computePipeline(device, matT, 'attr_mat_t'),
		computePipeline(device, attnMix, 'attr_attn_mix'),
		computePipeline(device, contract, 'attr_contract'),
		computePipeline(device, inject, 'attr_inject')
	]);
	return { matT: a, attnMix: b, contract: c, inject: d };
}

/** One dispatch recorder: binds buffers in binding order after the uniform, keeps what it made to free it. */
export class AttrRecorder {
	readonly made: GPUBuffer[] = [];
	readonly pass: GPUComputePassEncoder;
	readonly encoder: GPUCommandEncoder;
	constructor(
		readonly device: GPUDevice,
		readonly pl: AttrPipelines
	) {
		this.encoder = device.createCommandEncoder({ label: 'attribution' });
		this.pass = this.encoder.beginComputePass();
	}
	private run(pipeline: GPUComputePipeline, params: number[], buffers: GPUBuffer[], x: number, y: number) {
		const u = uniformBuffer(this.device, params);
		this.made.push(u);
		this.pass.setPipeline(pipeline);
		this.pass.setBindGroup(
			0,
			this.device.createBindGroup({
				layout: pipeline.getBindGroupLayout(0),
				entries: [u, ...buffers].map((buffer, binding) => ({ binding, resource: { buffer } }))
			})
		);
		this.pass.dispatchWorkgroups(x, y);
	}
	/** out = base + scale ⊙ (Wᵀ x) row by row (attr_mat_t.wgsl); `dummy` fills an unused binding. */
	matT(
		x: GPUBuffer,
		w: GPUBuffer,
		rows: number,
		nOut: number,
		nIn: number,
		nPos: number,
		out: GPUBuffer,
		dummy: GPUBuffer,
		scale?: GPUBuffer,
		base?: GPUBuffer
	) {
		this.run(
			this.pl.matT,
			[rows, nOut, nIn, nPos, scale ? 1 : 0, base ? 1 : 0],
			[x, w, scale ?? dummy, base ?? dummy, out],
			Math.ceil(nIn / 64),
			rows
		);
	}
	attnMix(dz: GPUBuffer, pattern: GPUBuffer, dv: GPUBuffer, batch: number, nPos: number, nHeads: number, nKv: number, hs: number) {
		this.run(this.pl.attnMix, [batch, nPos, nHeads, nKv, hs], [dz, pattern, dv], Math.ceil((nKv * hs) / 64), batch * nPos);
	}
	contract(
		g: GPUBuffer,
		src: GPUBuffer,
		pos: GPUBuffer,
		out: GPUBuffer,
		batch: number,
		nPos: number,
		dim: number,
		nSrc: number,
		total: number,
		offset: number
	) {
		this.run(this.pl.contract, [batch, nPos, dim, nSrc, total, offset], [g, src, pos, out], Math.ceil(nSrc / 64), batch);
	}
	inject(vecs: GPUBuffer, dst: GPUBuffer, g: GPUBuffer, n: number, nPos: number, dim: number) {
		this.run(this.pl.inject, [n, nPos, dim], [vecs, dst, g], Math.ceil(dim / 64), n);
	}
	submit() {
		this.pass.end();
		this.device.queue.submit([this.encoder.finish()]);
	}
	free() {
		for (const b of this.made) b.destroy();
	}
}

const f32 = (a: Float64Array) => Float32Array.from(a);
const u32Storage = (device: GPUDevice, a: Int32Array | Uint32Array, label: string) => {
	const buf = createStorage(device, a.byteLength, label);
	device.queue.writeBuffer(buf, 0, Uint32Array.from(a));
	return buf;
};

interface GpuBatch {
	batch: number;
	g: GPUBuffer;
	g2: GPUBuffer;
	dz: GPUBuffer;
	dv: GPUBuffer;
	out: GPUBuffer;
	rec: AttrRecorder;
}

/** The GPU backend over one prompt's frozen context; call `dispose` when the graph is built. */
export async function gpuBackend(device: GPUDevice, ctx: LinearContext): Promise<BackwardBackend<GpuBatch> & { dispose(): void }> {
	const pl = await attrPipelines(device);
	const { nPos: P, dim, nHeads, nKvHeads, headSize: hs } = ctx;
	const kv = nKvHeads * hs;
	// W_o reads the heads' concatenation: d_model wide for llama2.c, wider for Gemma 3 (4 × 32 over 64).
	const qDim = nHeads * hs;
	const owned: GPUBuffer[] = [];
	const keep = (b: GPUBuffer) => (owned.push(b), b);
	const dummy = keep(createStorage(device, 16, 'attr.dummy'));
	const block = (s: SourceBlock, label: string) => ({
		vectors: keep(storageFrom(device, f32(s.vectors), `${label}.vectors`)),
		pos: keep(u32Storage(device, s.pos, `${label}.pos`)),
		n: s.pos.length
	});
	const layers = ctx.layers.map((L, l) => ({
		wo: keep(storageFrom(device, L.wo, `attr.L${l}.wo`)),
		wv: keep(storageFrom(device, L.wv, `attr.L${l}.wv`)),
		wSkip: L.wSkip ? keep(storageFrom(device, L.wSkip, `attr.L${l}.wskip`)) : undefined,
		attnScale: keep(storageFrom(device, f32(L.attnScale), `attr.L${l}.attn_scale`)),
		// The skip's diagonal (a LayerNorm export's folded one where it has its own).
		ffnScale: keep(storageFrom(device, f32(L.skipScale ?? L.ffnScale), `attr.L${l}.ffn_scale`)),
		pattern: keep(storageFrom(device, f32(L.pattern), `attr.L${l}.pattern`)),
		sources: block(L.sources, `attr.L${l}.sources`)
	}));
	const tokens = block(ctx.tokens, 'attr.tokens');
	// Each target's output row: the tokens' edges first, then every layer's sources (index layer + 1).
	const sizes = [tokens.n, ...layers.map((L) => L.sources.n)];
	const offsets = sizes.map((_, i) => sizes.slice(0, i).reduce((x, y) => x + y, 0));
	const total = sizes.reduce((x, y) => x + y, 0);
	const swap = (b: GpuBatch) => ([b.g, b.g2] = [b.g2, b.g]);
	const touched = new WeakMap<GpuBatch, Set<number>>();

	return {
		zeros(batch) {
			const rows = batch * P;
			// One workgroup row per gradient row (dispatch y), and WebGPU caps a dimension at 65,535.
			if (rows > 65535)
				throw new Error(
					`a batch of ${batch} targets × ${P} positions is past the GPU's 65,535 rows a dispatch: use a batch of at most ${Math.floor(65535 / P)}`
				);
			return {
				batch,
				g: createStorage(device, rows * dim * 4, 'attr.g'),
				g2: createStorage(device, rows * dim * 4, 'attr.g2'),
				dz: createStorage(device, rows * qDim * 4, 'attr.dz'),
				dv: createStorage(device, rows * kv * 4, 'attr.dv'),
				out: createStorage(device, batch * total * 4, 'attr.out'),
				rec: new AttrRecorder(device, pl)
			};
		},
		inject(b, rows: Injection[]) {
			const vecs = new Float32Array(rows.length * dim);
			const dst = new Uint32Array(rows.length * 2);
			rows.forEach((r, k) => {
				for (let d = 0; d < dim; d++) vecs[k * dim + d] = r.vector[d];
				dst[2 * k] = r.b;
				dst[2 * k + 1] = r.pos;
			});
			const vb = storageFrom(device, vecs, 'attr.inject.vecs');
			const db = u32Storage(device, dst, 'attr.inject.dst');
			b.rec.made.push(vb, db);
			b.rec.inject(vb, db, b.g, rows.length, P, dim);
		},
		skip(b, l) {
			const L = layers[l];
			if (!L.wSkip) return;
			b.rec.matT(b.g, L.wSkip, b.batch * P, dim, dim, P, b.g2, dummy, L.ffnScale, b.g);
			swap(b);
		},
		attention(b, l) {
			const L = layers[l];
			const rows = b.batch * P;
			b.rec.matT(b.g, L.wo, rows, dim, qDim, P, b.dz, dummy);
			b.rec.attnMix(b.dz, L.pattern, b.dv, b.batch, P, nHeads, nKvHeads, hs);
			b.rec.matT(b.dv, L.wv, rows, kv, dim, P, b.g2, dummy, L.attnScale, b.g);
			swap(b);
		},
		contract(b, l) {
			const s = l < 0 ? tokens : layers[l].sources;
			b.rec.contract(b.g, s.vectors, s.pos, b.out, b.batch, P, dim, s.n, total, offsets[l + 1]);
			const set = touched.get(b) ?? new Set<number>();
			set.add(l + 1);
			touched.set(b, set);
		},
		async results(b) {
			b.rec.submit();
			const data = new Float32Array(await readBuffer(device, b.out, b.batch * total * 4));
			b.rec.free();
			const set = touched.get(b) ?? new Set<number>();
			const outs: Float64Array[] = [];
			for (let i = 0; i <= layers.length; i++) {
				if (!set.has(i)) continue;
				const n = sizes[i];
				const o = new Float64Array(b.batch * n);
				for (let r = 0; r < b.batch; r++) for (let s = 0; s < n; s++) o[r * n + s] = data[r * total + offsets[i] + s];
				outs[i] = o;
			}
			return outs;
		},
		release(b) {
			for (const x of [b.g, b.g2, b.dz, b.dv, b.out]) x.destroy();
		},
		dispose() {
			for (const x of owned) x.destroy();
		}
	};
}

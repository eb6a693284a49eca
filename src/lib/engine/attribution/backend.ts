/**
 * What a backward pass needs from the machine it runs on, so one orchestration (`edges.ts`) drives
 * both the plain TypeScript path and the WGSL one. A gradient batch is opaque to the orchestration:
 * a Float64Array here, a GPU buffer there.
 */
import { attentionMixBackward, contractSources, matTransposeRows } from './backward-ops';
import type { LinearContext } from './linear-model';

export interface Injection {
	b: number;
	pos: number;
	vector: Float64Array; // [dim]
}

export interface BackwardBackend<G> {
	/** A zeroed batch of `batch` targets' gradients, [batch, P, dim]. */
	zeros(batch: number): G | Promise<G>;
	/** Adds each vector at (b, pos): where a target's own read-out direction enters the residual. */
	inject(g: G, rows: Injection[]): void | Promise<void>;
	/** Steps from after layer l's MLP to before it: G += diag(ffnScale) W_skipᵀ G (nothing without W_skip). */
	skip(g: G, layer: number): void | Promise<void>;
	/** Steps from after layer l's attention to before it: G += diag(attnScale) W_vᵀ mix(Aᵀ, W_oᵀ G). */
	attention(g: G, layer: number): void | Promise<void>;
	/** Takes the direct effects on each target of layer l's sources (the tokens' when layer < 0) at this point of the pass. */
	contract(g: G, layer: number): void | Promise<void>;
	/** What the batch's contractions gave: [layer + 1] → [batch × n_sources(layer)], tokens at 0. Ends the batch. */
	results(g: G): Float64Array[] | Promise<Float64Array[]>;
	release?(g: G): void;
}

/** The TypeScript backend: the reference every other backend is compared with. */
export function cpuBackend(ctx: LinearContext): BackwardBackend<{ data: Float64Array; batch: number; outs: Float64Array[] }> {
	const { nPos: P, dim } = ctx;
	return {
		zeros: (batch) => ({ data: new Float64Array(batch * P * dim), batch, outs: [] }),
		inject(g, rows) {
			for (const r of rows) for (let d = 0; d < dim; d++) g.data[(r.b * P + r.pos) * dim + d] += r.vector[d];
		},
		skip(g, l) {
			const L = ctx.layers[l];
			if (!L.wSkip) return;
			// Read the whole of G before writing into it: the skip's gradient is taken at the output.
			const add = matTransposeRows(g.data, L.wSkip, g.batch * P, dim, dim, P, L.skipScale ?? L.ffnScale);
			for (let i = 0; i < add.length; i++) g.data[i] += add[i];
		},
		attention(g, l) {
			const L = ctx.layers[l];
			const rows = g.batch * P;
			const kv = ctx.nKvHeads * ctx.headSize;
			// W_o reads the heads' concatenation: dim wide for llama2.c, wider for some exports (Gemma 3).
			const dz = matTransposeRows(g.data, L.wo, rows, dim, ctx.nHeads * ctx.headSize, P);
			const dv = attentionMixBackward(dz, L.pattern, g.batch, P, ctx.nHeads, ctx.nKvHeads, ctx.headSize);
			matTransposeRows(dv, L.wv, rows, kv, dim, P, L.attnScale, g.data);
		},
		contract(g, l) {
			const s = l < 0 ? ctx.tokens : ctx.layers[l].sources;
			g.outs[l + 1] = contractSources(g.data, g.batch, P, dim, s.vectors, s.pos);
		},
		results: (g) => g.outs
	};
}

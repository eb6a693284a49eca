/**
 * An independent plain-TypeScript implementation of the frozen local replacement model, for the
 * attribution's tests. It shares no code with `src/lib/engine/attribution/`: it runs llama2.c's
 * forward position by position with a KV cache (as run.c does), in float64, keeping each
 * attention pattern and RMSNorm scale; then it re-runs the network with those frozen and with the
 * replacement's node values given, so a test can perturb one node and measure every target's input
 * (finite differences of the edges), or run it unperturbed and compare the logits with ORT.
 */
import type { LlamaWeights } from '../src/lib/engine/model/llama2c/checkpoint';
import type { Transcoder } from '../src/lib/engine/attribution/transcoder';

export interface FrozenReference {
	/** Node values on the prompt: act[l][p][f], err[l][p][d]. */
	act: number[][][];
	err: number[][][];
	/** Runs the frozen replacement model; `scale` multiplies one node's value (a feature, an error or a token). */
	run(
		scale?:
			| { kind: 'feature'; layer: number; pos: number; feature: number; by: number }
			| { kind: 'error' | 'token'; layer?: number; pos: number; by: number }
	): {
		pre: number[][][]; // [l][p][f] pre-activations
		logits: number[]; // at the last position, all of the vocabulary
	};
	realLogitsLast: number[];
}

function rms(x: number[], g: Float32Array, eps: number) {
	const s = 1 / Math.sqrt(x.reduce((a, v) => a + v * v, 0) / x.length + eps);
	return { s, y: x.map((v, i) => g[i] * s * v) };
}
function mv(w: Float32Array, x: number[], rows: number): number[] {
	const out = new Array<number>(rows);
	for (let i = 0; i < rows; i++) {
		let a = 0;
		for (let j = 0; j < x.length; j++) a += w[i * x.length + j] * x[j];
		out[i] = a;
	}
	return out;
}

export function frozenReference(w: LlamaWeights, tokens: number[], tcs: Transcoder[]): FrozenReference {
	const c = w.config;
	const D = c.dim;
	const hs = D / c.nHeads;
	const kvd = (D * c.nKvHeads) / c.nHeads;
	const group = c.nHeads / c.nKvHeads;
	const P = tokens.length;
	const emb = (p: number) => Array.from({ length: D }, (_, d) => w.tokenEmbedding[tokens[p] * D + d]);
	// Frozen quantities, per layer and position.
	const A: number[][][][] = []; // [l][p][h][t]
	const sAtt: number[][] = [];
	const sFfn: number[][] = [];
	const sFinal: number[] = [];
	const mlpIn: number[][][] = [];
	const mlpOut: number[][][] = [];
	for (let l = 0; l < c.nLayers; l++) [A, sAtt, sFfn, mlpIn, mlpOut].forEach((a) => a.push([]));
	const kc: number[][][] = Array.from({ length: c.nLayers }, () => []);
	const vc: number[][][] = Array.from({ length: c.nLayers }, () => []);
	let lastLogits: number[] = [];
	for (let p = 0; p < P; p++) {
		let x = emb(p);
		for (let l = 0; l < c.nLayers; l++) {
			const Lw = w.layers[l];
			const n1 = rms(x, Lw.rmsAtt, c.normEps);
			sAtt[l][p] = n1.s;
			const q = mv(Lw.wq, n1.y, D);
			const k = mv(Lw.wk, n1.y, kvd);
			const v = mv(Lw.wv, n1.y, kvd);
			for (let i = 0; i < D; i += 2) {
				const ang = p * Math.pow(c.ropeTheta, -(i % hs) / hs);
				const rot = (a: number[]) => {
					const [a0, a1] = [a[i], a[i + 1]];
					a[i] = a0 * Math.cos(ang) - a1 * Math.sin(ang);
					a[i + 1] = a0 * Math.sin(ang) + a1 * Math.cos(ang);
				};
				rot(q);
				if (i < kvd) rot(k);
			}
			kc[l].push(k);
			vc[l].push(v);
			const z = new Array(D).fill(0);
			A[l][p] = [];
			for (let h = 0; h < c.nHeads; h++) {
				const o = Math.floor(h / group) * hs;
				const sc = kc[l].map((kt) => kt.slice(o, o + hs).reduce((a, kv, i) => a + kv * q[h * hs + i], 0) / Math.sqrt(hs));
				const m = Math.max(...sc);
				const e = sc.map((s) => Math.exp(s - m));
				const tot = e.reduce((a, b) => a + b, 0);
				A[l][p][h] = e.map((v) => v / tot);
				A[l][p][h].forEach((a, t) => {
					for (let i = 0; i < hs; i++) z[h * hs + i] += a * vc[l][t][o + i];
				});
			}
			const attnOut = mv(Lw.wo, z, D);
			x = x.map((xv, i) => xv + attnOut[i]);
			const n2 = rms(x, Lw.rmsFfn, c.normEps);
			sFfn[l][p] = n2.s;
			mlpIn[l][p] = n2.y;
			const g1 = mv(Lw.w1, n2.y, c.hiddenDim);
			const g3 = mv(Lw.w3, n2.y, c.hiddenDim);
			const h = g1.map((a, i) => (a / (1 + Math.exp(-a))) * g3[i]);
			mlpOut[l][p] = mv(Lw.w2, h, D);
			x = x.map((xv, i) => xv + mlpOut[l][p][i]);
		}
		const nf = rms(x, w.rmsFinal, c.normEps);
		sFinal[p] = nf.s;
		if (p === P - 1) lastLogits = mv(w.classifier, nf.y, c.vocabSize);
	}
	// Node values: transcoder activations and errors on the real MLP inputs and outputs.
	const encode = (t: Transcoder, xin: number[]) => {
		const pre = Array.from(t.bEnc, Number);
		for (let i = 0; i < xin.length; i++) for (let f = 0; f < t.dSae; f++) pre[f] += xin[i] * t.wEnc[i * t.dSae + f];
		return pre;
	};
	const act = tcs.map((t, l) =>
		mlpIn[l].map((xin) =>
			encode(t, xin).map((pre, f) => {
				const th = t.threshold ? t.threshold[f] : 0;
				return pre > th && pre > 0 ? pre : 0;
			})
		)
	);
	const decode = (t: Transcoder, a: number[], xin: number[]) =>
		Array.from({ length: D }, (_, d) => {
			let s = t.bDec[d];
			a.forEach((af, f) => (s += af * t.wDec[f * D + d]));
			if (t.wSkip) xin.forEach((xv, i) => (s += t.wSkip![d * D + i] * xv));
			return s;
		});
	const err = tcs.map((t, l) => mlpOut[l].map((out, p) => decode(t, act[l][p], mlpIn[l][p]).map((r, d) => out[d] - r)));

	const run: FrozenReference['run'] = (scale) => {
		const by = (kind: string, l: number, p: number, f = -1) =>
			scale &&
			scale.kind === kind &&
			(scale.layer ?? -1) === (kind === 'token' ? -1 : l) &&
			scale.pos === p &&
			(kind !== 'feature' || (scale as { feature: number }).feature === f)
				? scale.by
				: 1;
		let xs = tokens.map((_, p) => emb(p).map((v) => v * by('token', -1, p)));
		const pre: number[][][] = [];
		for (let l = 0; l < c.nLayers; l++) {
			const Lw = w.layers[l];
			const t = tcs[l];
			const vs = xs.map((x, p) =>
				mv(
					Lw.wv,
					x.map((v, i) => Lw.rmsAtt[i] * sAtt[l][p] * v),
					kvd
				)
			);
			xs = xs.map((x, p) => {
				const z = new Array(D).fill(0);
				for (let h = 0; h < c.nHeads; h++) {
					const o = Math.floor(h / group) * hs;
					for (let tt = 0; tt <= p; tt++) for (let i = 0; i < hs; i++) z[h * hs + i] += A[l][p][h][tt] * vs[tt][o + i];
				}
				const ao = mv(Lw.wo, z, D);
				return x.map((v, i) => v + ao[i]);
			});
			const ins = xs.map((x, p) => x.map((v, i) => Lw.rmsFfn[i] * sFfn[l][p] * v));
			pre.push(ins.map((xin) => encode(t, xin)));
			xs = xs.map((x, p) => {
				const a = act[l][p].map((v, f) => v * by('feature', l, p, f));
				const out = decode(t, a, ins[p]);
				const eb = by('error', l, p);
				return x.map((v, d) => v + out[d] + err[l][p][d] * eb);
			});
		}
		const last = xs[P - 1].map((v, i) => w.rmsFinal[i] * sFinal[P - 1] * v);
		return { pre, logits: mv(w.classifier, last, c.vocabSize) };
	};
	return { act, err, run, realLogitsLast: lastLogits };
}

/** The attribution tests' inputs: seeded random transcoders (their values are inputs, not what is tested). */
export { randomTranscoders } from '../src/lib/engine/attribution/random-transcoders';

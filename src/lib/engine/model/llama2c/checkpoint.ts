/**
 * Reads llama2.c checkpoints (karpathy/llama2.c `export.py`): the legacy header-only format
 * ("version 0") and the versioned fp32 format ("version 1", magic "ak42").
 * Weights stay in llama2.c's layout: each matrix is [out, in] row-major, as run.c's matmul reads it.
 */
import { LoupeError } from '../../errors';

export interface LlamaConfig {
	dim: number; // d_model
	hiddenDim: number; // SwiGLU inner width
	nLayers: number;
	nHeads: number;
	nKvHeads: number; // grouped-query attention: nHeads % nKvHeads == 0
	vocabSize: number;
	seqLen: number; // max context
	sharedClassifier: boolean; // classifier = token embedding
	normEps: number; // RMSNorm epsilon (1e-5 in llama2.c)
	ropeTheta: number; // 10000 in llama2.c
}

export interface LlamaLayerWeights {
	rmsAtt: Float32Array; // [dim]
	wq: Float32Array; // [dim, dim]        (out, in)
	wk: Float32Array; // [kvDim, dim]
	wv: Float32Array; // [kvDim, dim]
	wo: Float32Array; // [dim, dim]
	rmsFfn: Float32Array; // [dim]
	w1: Float32Array; // [hidden, dim]  gate
	w2: Float32Array; // [dim, hidden]  down
	w3: Float32Array; // [hidden, dim]  up
}

export interface LlamaWeights {
	config: LlamaConfig;
	tokenEmbedding: Float32Array; // [vocab, dim]
	layers: LlamaLayerWeights[];
	rmsFinal: Float32Array; // [dim]
	classifier: Float32Array; // [vocab, dim] (the embedding itself when shared)
}

export const headSize = (c: LlamaConfig) => c.dim / c.nHeads;
export const kvDim = (c: LlamaConfig) => (c.dim * c.nKvHeads) / c.nHeads;

const MAGIC_AK42 = 0x616b3432;
const V1_HEADER_BYTES = 256;

function checkConfig(c: LlamaConfig, what: string) {
	const ok =
		[c.dim, c.hiddenDim, c.nLayers, c.nHeads, c.nKvHeads, c.vocabSize, c.seqLen].every(
			(v) => Number.isInteger(v) && v > 0 && v < 1 << 24
		) &&
		c.dim % c.nHeads === 0 &&
		c.nHeads % c.nKvHeads === 0 &&
		(c.dim / c.nHeads) % 2 === 0 &&
		c.nLayers <= 1024;
	if (!ok)
		throw new LoupeError(
			'not-a-checkpoint',
			`${what} is not a llama2.c checkpoint: its header reads dim=${c.dim}, hidden_dim=${c.hiddenDim}, ` +
				`n_layers=${c.nLayers}, n_heads=${c.nHeads}, n_kv_heads=${c.nKvHeads}, vocab_size=${c.vocabSize}, seq_len=${c.seqLen}.`,
			'Choose a .bin file written by llama2.c (export.py or the original model .bin files).'
		);
}

function floatCount(c: LlamaConfig, legacy: boolean): number {
	const hs = headSize(c);
	const kv = kvDim(c);
	const perLayer = 2 * c.dim + 2 * c.dim * c.dim + 2 * kv * c.dim + 3 * c.dim * c.hiddenDim;
	const freqCis = legacy ? c.seqLen * hs : 0; // real + imag tables, seq_len * head_size/2 each
	const cls = c.sharedClassifier ? 0 : c.vocabSize * c.dim;
	return c.vocabSize * c.dim + c.nLayers * perLayer + c.dim + freqCis + cls;
}

/** Parses a checkpoint. `name` is used in error messages (a file name or URL). */
export function readLlama2cCheckpoint(buf: ArrayBuffer, name = 'This file'): LlamaWeights {
	if (buf.byteLength < 28)
		throw new LoupeError(
			'not-a-checkpoint',
			`${name} is only ${buf.byteLength} bytes: too short to be a llama2.c checkpoint.`,
			'Choose a .bin file written by llama2.c.'
		);
	const dv = new DataView(buf);
	let legacy = true;
	let offset = 28;
	let config: LlamaConfig;
	if (dv.getUint32(0, true) === MAGIC_AK42) {
		// The versioned header is 256 bytes; its fields reach byte 36, past the legacy header's 28.
		if (buf.byteLength < V1_HEADER_BYTES)
			throw new LoupeError(
				'truncated',
				`${name} starts like a llama2.c version-1 checkpoint ("ak42") but is only ${buf.byteLength} bytes: its header alone is ${V1_HEADER_BYTES}.`,
				'The download or copy was cut short. Delete it in the Storage panel and load it again.'
			);
		const version = dv.getInt32(4, true);
		if (version !== 1)
			throw new LoupeError(
				'unsupported-checkpoint',
				`${name} is a llama2.c checkpoint of version ${version}; Loupe reads fp32 checkpoints (the legacy format and version 1).` +
					(version === 2 ? ' Version 2 is int8-quantized.' : ''),
				'Export the model again with `python export.py --version 1` (fp32), or use the legacy format.'
			);
		legacy = false;
		const h = (i: number) => dv.getInt32(8 + 4 * i, true);
		config = {
			dim: h(0),
			hiddenDim: h(1),
			nLayers: h(2),
			nHeads: h(3),
			nKvHeads: h(4),
			vocabSize: h(5),
			seqLen: h(6),
			sharedClassifier: dv.getUint8(36) === 1,
			normEps: 1e-5,
			ropeTheta: 10000
		};
		offset = V1_HEADER_BYTES;
	} else {
		const h = (i: number) => dv.getInt32(4 * i, true);
		const vocab = h(5);
		// Legacy format: a negative vocab_size means the classifier is stored separately.
		config = {
			dim: h(0),
			hiddenDim: h(1),
			nLayers: h(2),
			nHeads: h(3),
			nKvHeads: h(4),
			vocabSize: Math.abs(vocab),
			seqLen: h(6),
			sharedClassifier: vocab > 0,
			normEps: 1e-5,
			ropeTheta: 10000
		};
	}
	checkConfig(config, name);
	const expected = offset + 4 * floatCount(config, legacy);
	if (buf.byteLength < expected)
		throw new LoupeError(
			'truncated',
			`${name} is truncated: it has ${buf.byteLength.toLocaleString('en')} bytes, but its header ` +
				`(dim ${config.dim}, ${config.nLayers} layers, vocab ${config.vocabSize}) needs ${expected.toLocaleString('en')}.`,
			'The download or copy was cut short. Delete it in the Storage panel and load it again.'
		);
	if (buf.byteLength > expected)
		throw new LoupeError(
			'not-a-checkpoint',
			`${name} has ${buf.byteLength - expected} bytes more than its header (dim ${config.dim}, ${config.nLayers} layers) describes: it is not a llama2.c fp32 checkpoint, or the header is corrupt.`,
			'Choose a .bin file written by llama2.c (legacy or version 1, fp32).'
		);

	// Copy out of the file buffer so weights are 4-byte aligned whatever the header size.
	const all = new Float32Array(buf.slice(offset));
	let p = 0;
	const take = (n: number) => all.subarray(p, (p += n));
	const { dim, hiddenDim, nLayers, vocabSize } = config;
	const kv = kvDim(config);
	const perLayer = <K extends keyof LlamaLayerWeights>(n: number) => {
		const rows: Float32Array[] = [];
		for (let l = 0; l < nLayers; l++) rows.push(take(n));
		return rows as LlamaLayerWeights[K][];
	};
	let tokenEmbedding: Float32Array, rmsFinal: Float32Array;
	let rmsAtt, wq, wk, wv, wo, rmsFfn, w1, w2, w3: Float32Array[];
	if (legacy) {
		tokenEmbedding = take(vocabSize * dim);
		rmsAtt = perLayer(dim);
		wq = perLayer(dim * dim);
		wk = perLayer(kv * dim);
		wv = perLayer(kv * dim);
		wo = perLayer(dim * dim);
		rmsFfn = perLayer(dim);
		w1 = perLayer(hiddenDim * dim);
		w2 = perLayer(dim * hiddenDim);
		w3 = perLayer(hiddenDim * dim);
		rmsFinal = take(dim);
		take(config.seqLen * headSize(config)); // freq_cis_real + freq_cis_imag: recomputed, as run.c does
	} else {
		rmsAtt = perLayer(dim);
		rmsFfn = perLayer(dim);
		rmsFinal = take(dim);
		tokenEmbedding = take(vocabSize * dim);
		wq = perLayer(dim * dim);
		wk = perLayer(kv * dim);
		wv = perLayer(kv * dim);
		wo = perLayer(dim * dim);
		w1 = perLayer(hiddenDim * dim);
		w2 = perLayer(dim * hiddenDim);
		w3 = perLayer(hiddenDim * dim);
	}
	const classifier = config.sharedClassifier ? tokenEmbedding : take(vocabSize * dim);
	const layers = rmsAtt.map((_, l) => ({
		rmsAtt: rmsAtt[l],
		wq: wq[l],
		wk: wk[l],
		wv: wv[l],
		wo: wo[l],
		rmsFfn: rmsFfn[l],
		w1: w1[l],
		w2: w2[l],
		w3: w3[l]
	}));
	return { config, tokenEmbedding, layers, rmsFinal, classifier };
}

import type { DecoderIo } from './onnx/decoder-io';
import type { EmbeddingInput } from './onnx/embedding-outside';
import type { ColumnFile } from './onnx/column-file';
/**
 * A model as a chain of ONNX segments cut at hook points (see DESIGN.md). Segment i reads the
 * tensor at cut i-1 (or token ids, for the first) and writes the tensor at cut i (or logits, for
 * the last), under its hook name; a cut may be a residual boundary or a hook inside a layer
 * (attn_out, mlp_in, mlp_out), all d_model wide. A segment may also read earlier cuts and carried
 * tensors by name from the runner's pool (`inputNames`). Between two segments the engine holds the
 * tensor on the GPU, where kernels read and edit it.
 */
export interface SegmentSpec {
	index: number;
	/** Layers this segment computes (all or part of): [first, end). */
	layers: [number, number];
	/** The graph input carrying the residual (a hook name), absent for the first segment. */
	residualIn?: string;
	/** The graph output carrying the residual (a hook name), absent for the last segment. */
	residualOut?: string;
	inputNames: string[];
	outputNames: string[];
	/** ONNX ModelProto bytes. */
	bytes: Uint8Array;
	/**
	 * Where this segment reads the token embedding's rows as an input instead of holding the matrix
	 * (onnx/embedding-outside.ts): the runner fills `embedding.input` from the weights file.
	 */
	embedding?: EmbeddingInput;
	/**
	 * Weights files that exist only as views of the real ones (a MatMul weight's column pieces:
	 * onnx/column-file.ts), to hand onnxruntime beside `externalData` (`withColumnFiles`).
	 */
	columnFiles?: ColumnFile[];
}

export interface DecoderShape {
	nLayers: number;
	dModel: number;
	vocabSize: number;
	maxSeqLen: number;
}

export interface SegmentedModel {
	shape: DecoderShape;
	/** What the graphs read and write, by role (token ids, positions, mask, KV cache pairs). */
	io: DecoderIo;
	/** Weights kept outside the graph files, handed to every segment's session. */
	externalData?: { path: string; data: Uint8Array }[];
	/** The residual boundaries among the cuts, ascending (hooks inside layers are only in `cutHooks`). */
	cuts: number[];
	/** Every cut as its canonical hook name, in the order the segments write them (absent: the residual `cuts`). */
	cutHooks?: string[];
	segments: SegmentSpec[];
}

export const pastKeyName = (l: number) => `past_key_values.${l}.key`;
export const pastValueName = (l: number) => `past_key_values.${l}.value`;
export const presentKeyName = (l: number) => `present.${l}.key`;
export const presentValueName = (l: number) => `present.${l}.value`;

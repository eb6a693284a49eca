import type { DecoderIo } from './onnx/decoder-io';
/**
 * A model as a chain of ONNX segments cut at hook points (see DESIGN.md). Segment i reads the
 * residual at boundary `boundaries[i]` (or token ids, for the first) and writes the residual at
 * boundary `boundaries[i+1]` (or logits, for the last). Between two segments the engine holds the
 * residual on the GPU, where kernels read and edit it.
 */
export interface SegmentSpec {
	index: number;
	/** Layers this segment computes: [first, end). */
	layers: [number, number];
	/** The graph input carrying the residual (a hook name), absent for the first segment. */
	residualIn?: string;
	/** The graph output carrying the residual (a hook name), absent for the last segment. */
	residualOut?: string;
	inputNames: string[];
	outputNames: string[];
	/** ONNX ModelProto bytes. */
	bytes: Uint8Array;
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
	/** Cut boundaries, ascending, excluding 0-before-embedding and the logits end. */
	cuts: number[];
	segments: SegmentSpec[];
}

export const pastKeyName = (l: number) => `past_key_values.${l}.key`;
export const pastValueName = (l: number) => `past_key_values.${l}.value`;
export const presentKeyName = (l: number) => `present.${l}.key`;
export const presentValueName = (l: number) => `present.${l}.value`;

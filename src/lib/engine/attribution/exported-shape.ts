/**
 * What an exported decoder has beyond a llama2.c checkpoint, in the terms the attribution needs:
 * the weights stay `LlamaWeights` (llama2.c's [out, in] layout, W_q and W_k rows in its interleaved
 * RoPE order), and `exported` says how the forward differs — head size, attention scale, RoPE
 * frequencies and window per layer, Gemma 3's q/k norms and sandwich norms, the embedding scale,
 * the MLP's activation. A checkpoint has no `exported`, and every llama2.c path runs as it did.
 *
 * With attention patterns frozen, none of it changes what the replacement model is: the q/k norms,
 * RoPE and the window only shape the (frozen) patterns, a post-attention norm is a frozen diagonal
 * after W_o, and a post-feedforward norm sits inside what the transcoder replaces (hook_mlp_out is
 * after it). GPT-2's LayerNorm with its scale frozen is linear (the mean's removal is) plus its β;
 * its biases and learned positions add constant terms and an embedding-side source.
 */
import { headSize, type LlamaWeights } from '../model/llama2c/checkpoint';

export interface ExportedLayer {
	/** RoPE frequency of each pair of a head, [headSize / 2]: pair j (rows 2j, 2j+1) turns by p · invFreq[j]; empty without RoPE. */
	invFreq: Float64Array;
	/** Sliding window: key t is read from query p only when p − t < window; 0 for plain causal attention. */
	window: number;
	/** Gemma 3's RMSNorm of each head's query and key (before RoPE), [headSize], in the same row order. */
	qNorm?: Float32Array;
	kNorm?: Float32Array;
	/** Gemma 3's sandwich norms: after W_o (before the attention add) and after the MLP (before the MLP add). */
	postAttnNorm?: Float32Array;
	postFfnNorm?: Float32Array;
	/** GPT-2's constant terms: LayerNorm biases (β) before attention and the MLP, projection biases. */
	attnNormBias?: Float32Array;
	ffnNormBias?: Float32Array;
	bq?: Float32Array;
	bk?: Float32Array;
	bv?: Float32Array;
	bo?: Float32Array;
	/** The MLP's biases (inside what a transcoder replaces). */
	b1?: Float32Array;
	b2?: Float32Array;
}

export interface ExportedShape {
	/** The trace's architecture ('llama', 'gemma'), for messages. */
	architecture: string;
	headSize: number;
	/** What the scores q·k are multiplied by before the softmax. */
	attnScale: number;
	/** What the token embedding is multiplied by before the first layer (√d_model for Gemma). */
	embedScale: number;
	mlpActivation: 'silu' | 'gelu_tanh';
	/** Gated (W_down(act(W_gate x) ⊙ W_up x)) or plain (W_2 act(W_1 x + b_1) + b_2, GPT-2; w3 is empty). */
	mlpGated: boolean;
	/** LayerNorm (subtract the mean, then scale, then add β) instead of RMSNorm. */
	layerNorm: boolean;
	/** The final norm's β (LayerNorm). */
	finalNormBias?: Float32Array;
	/** Learned position embeddings [maxPositions, dim], added to the token embedding (GPT-2). */
	positions?: Float32Array;
	layers: ExportedLayer[];
}

export type DecoderWeights = LlamaWeights & { exported?: ExportedShape };

/** The attention heads' width: llama2.c's dim / nHeads, or the export's own (Gemma 3's is wider). */
export const attnHeadSize = (w: DecoderWeights) => w.exported?.headSize ?? headSize(w.config);

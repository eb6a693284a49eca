// KV-cache pairing by structure (model/onnx/kv-cache.ts, decoder-io.ts): each past input is paired
// with the present output its attention op's slot or its appending Concat writes, on the real
// exports and on small graphs written here to be crossed, ambiguous or unknown, which must be
// refused with a message that names the input and the candidates. Expected pairings come from the
// fixtures' READMEs and the op schemas (onnxruntime's ContribOperators.md, the ONNX spec), not from
// the code under test.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { GraphIndex, decodeModel } from '../../src/lib/engine/model/onnx/graph';
import { describeDecoderIo } from '../../src/lib/engine/model/onnx/decoder-io';
import { nameRole } from '../../src/lib/engine/model/onnx/kv-cache';
import { GraphBuilder } from '../../src/lib/engine/model/onnx/graph-builder';
import { buildTinyDecoder } from '../../src/lib/engine/model/onnx/tiny-decoders';
import { fixturesDir } from '../fixtures';

const io = (bytes: Uint8Array) => describeDecoderIo(new GraphIndex(decodeModel(bytes)));
const fixture = (p: string) => new Uint8Array(readFileSync(resolve(fixturesDir, p)));
const pairs = (bytes: Uint8Array) => Object.fromEntries(io(bytes).kv.map((p) => [p.past, p.present]));

describe('pairing on real exports', () => {
	it('model-builder fp16 Llama (MultiHeadAttention reads both pasts): past value ↔ present value, by slots 7 → 2', () => {
		const d = io(fixture('onnx-exports/llama_modelbuilder_fp16/model.onnx'));
		expect(Object.fromEntries(d.kv.map((p) => [p.past, p.present]))).toEqual({
			'past_key_values.0.key': 'present.0.key',
			'past_key_values.0.value': 'present.0.value',
			'past_key_values.1.key': 'present.1.key',
			'past_key_values.1.value': 'present.1.value'
		});
		expect(d.kv.find((p) => p.past === 'past_key_values.1.value')!.via).toMatch(/MultiHeadAttention .* input 7 → output 2/);
		expect(d.lmHead).toBe(true);
	});
	it('ORT-fused GPT-2 (com.microsoft Attention, K and V stacked): past_N ↔ present_N by slot 4 → 1', () => {
		const d = io(fixture('onnx-exports/gpt2_ort_fused_past.onnx'));
		expect(Object.fromEntries(d.kv.map((p) => [p.past, p.present]))).toEqual(
			Object.fromEntries([0, 1, 2, 3, 4].map((l) => [`past_${l}`, `present_${l}`]))
		);
		expect(d.kv.every((p) => /input 4 → output 1/.test(p.via!) && p.dims.length === 5 && p.seqAxis === 3)).toBe(true);
	});
	it('torch-unfused Megatron GPT-2 (stacked, split, appended by Concat, stacked again): past_0 ↔ present_0', () => {
		expect(pairs(fixture('onnx-exports/gpt2_megatron_torch_unfused.onnx'))).toEqual({ past_0: 'present_0' });
	});
	it.each(['gpt2', 'gptneox', 'llama', 'gemma3'])('torch export %s: every past ↔ its own present by the appending Concat', (m) => {
		const p = pairs(fixture(`torch-exports/${m}/model.onnx`));
		expect(Object.keys(p).length).toBeGreaterThan(0);
		for (const [past, present] of Object.entries(p)) expect(present).toBe(past.replace('past_key_values.', 'present.'));
	});
});

describe('names as a cross-check', () => {
	it("reads layer and role from common exporters' names", () => {
		expect(nameRole('past_key_values.3.value')).toEqual({ layer: 3, role: 'value' });
		expect(nameRole('present.3.key')).toEqual({ layer: 3, role: 'key' });
		expect(nameRole('past_7')).toEqual({ layer: 7, role: undefined });
		expect(nameRole('updated_value_cache.2')).toEqual({ layer: 2, role: 'value' });
		expect(nameRole('past_key_12')).toEqual({ layer: 12, role: 'key' });
	});
});

/**
 * A one-layer graph whose only interesting part is the cache: `wire` writes the nodes between the
 * pasts (and k, v computed from the embedding) and the presents.
 */
function cacheGraph(
	wire: (g: GraphBuilder, x: { pastK: string; pastV: string; k: string; v: string; q: string }) => void,
	extra?: (g: GraphBuilder) => void
): Uint8Array {
	const g = new GraphBuilder('kv-fixture');
	const ids = g.input('input_ids', 'int64', ['batch', 'seq']);
	g.input('attention_mask', 'int64', ['batch', 'total']);
	const emb = g.op('Gather', [g.weight('embed', new Float32Array(10 * 8).fill(0.1), [10, 8]), ids], { axis: 0 });
	const heads = (t: string) => g.op('Transpose', [g.op('Reshape', [t, g.constant([0, 0, 2, 4])])], { perm: [0, 2, 1, 3] });
	const proj = (name: string) => g.op('MatMul', [emb, g.weight(name, new Float32Array(64).fill(0.2), [8, 8])]);
	const pastK = g.input('past_key_values.0.key', 'float32', ['batch', 2, 'past', 4]);
	const pastV = g.input('past_key_values.0.value', 'float32', ['batch', 2, 'past', 4]);
	wire(g, { pastK, pastV, k: heads(proj('k')), v: heads(proj('v')), q: proj('q') });
	extra?.(g);
	g.alias(g.op('MatMul', [emb, g.weight('lm_head', new Float32Array(80).fill(0.3), [8, 10])]), 'logits');
	g.output('logits', 'float32', ['batch', 'seq', 10]);
	g.output('present.0.key', 'float32', ['batch', 2, 'total', 4]);
	g.output('present.0.value', 'float32', ['batch', 2, 'total', 4]);
	return g.toBytes(17);
}

const mha = (g: GraphBuilder, x: { q: string; k: string; v: string }, pastAt6: string, pastAt7: string) =>
	g.node(
		'MultiHeadAttention',
		[x.q, x.k, x.v, '', '', '', pastAt6, pastAt7],
		['/attn', 'present.0.key', 'present.0.value'],
		{ num_heads: 2 },
		'com.microsoft'
	);

describe('what pairing refuses, with the reason', () => {
	it('accepts a well-wired MultiHeadAttention graph (the control for the refusals below)', () => {
		expect(pairs(cacheGraph((g, x) => mha(g, x, x.pastK, x.pastV)))).toEqual({
			'past_key_values.0.key': 'present.0.key',
			'past_key_values.0.value': 'present.0.value'
		});
	});
	it('fused attention with the pasts crossed into its slots: structure and names disagree', () => {
		const bytes = cacheGraph((g, x) => mha(g, x, x.pastV, x.pastK));
		expect(() => io(bytes)).toThrow(
			/"past_key_values\.0\.key" becomes "present\.0\.value" \(MultiHeadAttention .*input 7 → output 2\), but the names say otherwise/
		);
	});
	it("unfused Concats writing the other role's present: structure and names disagree", () => {
		const bytes = cacheGraph((g, x) => {
			g.alias(g.op('Concat', [x.pastK, x.k], { axis: 2 }), 'present.0.value');
			g.alias(g.op('Concat', [x.pastV, x.v], { axis: 2 }), 'present.0.key');
		});
		expect(() => io(bytes)).toThrow(
			/"past_key_values\.0\.key" becomes "present\.0\.value" \(Concat .* appends to it\), but the names say otherwise \(layer 0 key vs layer 0 value\)/
		);
	});
	it('one appended past written to two outputs: ambiguous, both candidates named', () => {
		const bytes = cacheGraph(
			(g, x) => {
				const k = g.op('Concat', [x.pastK, x.k], { axis: 2 });
				g.alias(k, 'present.0.key');
				g.alias(k, 'present.0.key_copy');
				g.alias(g.op('Concat', [x.pastV, x.v], { axis: 2 }), 'present.0.value');
			},
			(g) => g.output('present.0.key_copy', 'float32', ['batch', 2, 'total', 4])
		);
		expect(() => io(bytes)).toThrow(
			/"past_key_values\.0\.key" is appended into several graph outputs \("present\.0\.key", "present\.0\.key_copy"\)/
		);
	});
	it('an attention op whose slots Loupe does not know: refused, naming the op', () => {
		const bytes = cacheGraph((g, x) =>
			g.node('FancyAttention', [x.q, x.k, x.v, x.pastK, x.pastV], ['/attn', 'present.0.key', 'present.0.value'], {}, 'com.example')
		);
		expect(() => io(bytes)).toThrow(/"past_key_values\.0\.key" reaches no present output .* \(it is read by FancyAttention/);
	});
	it('two pasts appended into one present: refused rather than feed both from it', () => {
		const bytes = cacheGraph((g, x) => {
			g.alias(g.op('Concat', [x.pastK, x.pastV, x.k], { axis: 2 }), 'present.0.key');
			g.alias(g.op('Concat', [x.pastV, x.v], { axis: 2 }), 'present.0.value');
		});
		// The value past reaches two presents (through the shared Concat and its own): ambiguous.
		expect(() => io(bytes)).toThrow(/"past_key_values\.0\.value" is appended into several graph outputs/);
	});
	it('two pasts whose only present is one Concat of both: refused rather than feed both from it', () => {
		const g = new GraphBuilder('two-into-one');
		const ids = g.input('input_ids', 'int64', ['batch', 'seq']);
		const x = g.op('Gather', [g.weight('embed', new Float32Array(40).fill(0.1), [10, 4]), ids], { axis: 0 });
		const a = g.input('cache_a.0', 'float32', ['batch', 1, 'past', 4]);
		const b = g.input('cache_b.0', 'float32', ['batch', 1, 'past', 4]);
		g.alias(g.op('Concat', [a, b, g.op('Unsqueeze', [x, g.constant([1])])], { axis: 2 }), 'present.0');
		g.output('present.0', 'float32', ['batch', 1, 'total', 4]);
		g.alias(g.op('MatMul', [x, g.weight('lm', new Float32Array(40).fill(0.1), [4, 10])]), 'logits');
		g.output('logits', 'float32', ['batch', 'seq', 10]);
		expect(() => io(g.toBytes(17))).toThrow(/"cache_a\.0" and "cache_b\.0" would all be fed from "present\.0"/);
	});
	it('a ring-buffer (circular) TensorScatter cache: refused, saying what to export instead', () => {
		const bytes = cacheGraph((g, x) => {
			const w = g.input('write_indices', 'int64', ['batch']);
			g.alias(g.op('TensorScatter', [x.pastK, x.k, w], { axis: 2, mode: 'circular' }), 'present.0.key');
			g.alias(g.op('TensorScatter', [x.pastV, x.v, w], { axis: 2, mode: 'circular' }), 'present.0.value');
		});
		expect(() => io(bytes)).toThrow(/TensorScatter .* "circular" mode .* Export with a linear static cache or a dynamic \(Concat\) cache/);
	});
	it('a static cache of symbolic length: refused, naming the input', () => {
		const bytes = cacheGraph((g, x) => {
			const w = g.input('write_indices', 'int64', ['batch']);
			g.alias(g.op('TensorScatter', [x.pastK, x.k, w], { axis: 2 }), 'present.0.key');
			g.alias(g.op('TensorScatter', [x.pastV, x.v, w], { axis: 2 }), 'present.0.value');
		});
		expect(() => io(bytes)).toThrow(/static KV cache "past_key_values\.0\.key" has a symbolic length \(past\)/);
	});
	it('an input Loupe cannot fill: refused, naming it', () => {
		const bytes = cacheGraph((g, x) => {
			mha(g, x, x.pastK, x.pastV);
			g.input('cache_position', 'int64', ['seq']);
		});
		expect(() => io(bytes)).toThrow(/does not know how to fill the graph input "cache_position" \(int64 \["seq"\]\)/);
	});
});

describe('LM head or hidden state, by structure', () => {
	it('a tiny decoder with its LM head: logits', () => {
		expect(io(buildTinyDecoder({ arch: 'llama', style: 'unfused' })).lmHead).toBe(true);
	});
	/** Embedding → norm-like scale → output, with or without a product by a [d, V] weight. */
	const baseModel = (withHead: boolean, outDims: (string | number)[]) => {
		const g = new GraphBuilder('base');
		const ids = g.input('input_ids', 'int64', ['batch', 'seq']);
		const x = g.op('Gather', [g.weight('embed', new Float32Array(12 * 6).fill(0.1), [12, 6]), ids], { axis: 0 });
		const h = g.op('Mul', [x, g.weight('norm', new Float32Array(6).fill(1), [6])]);
		g.alias(
			withHead ? g.op('MatMul', [h, g.weight('lm', new Float32Array(72).fill(0.1), [6, 12])]) : h,
			withHead ? 'logits' : 'last_hidden_state'
		);
		g.output(withHead ? 'logits' : 'last_hidden_state', 'float32', outDims);
		return g.toBytes(17);
	};
	it('a base model whose output is the hidden state [B,S,d_model]: no LM head', () => {
		const d = io(baseModel(false, ['batch', 'seq', 6]));
		expect(d).toMatchObject({ logits: 'last_hidden_state', lmHead: false });
	});
	it("a product by a [d_model, vocab] weight is an LM head even where the output's width is symbolic", () => {
		expect(io(baseModel(true, ['batch', 'seq', 'vocab'])).lmHead).toBe(true);
	});
});

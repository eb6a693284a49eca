// The status line's parameter count on the four torch exports: each graph's distinct parameters
// equal what Hugging Face's num_parameters() gives for its config.json (written out below from the
// architectures' module shapes, not from the graph), so a tied LM head stored twice counts once
// and an untied one twice; a rate under one token a second never reads "0.0 tokens/s".
import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { openExportedDecoder } from '../../src/lib/engine/model/onnx/hook-manifest';
import { distinctParameterCount } from '../../src/lib/engine/model/parameter-count';
import { formatRate } from '../../src/lib/ui/format';
import { fixturesDir } from '../fixtures';

type Config = Record<string, number | boolean | null>;
const n = (c: Config, k: string) => c[k] as number;

/** num_parameters() of the Hugging Face class, from its config (embeddings counted once when tied). */
function hfParameters(model: string, c: Config): number {
	const V = n(c, 'vocab_size');
	if (model === 'gpt2') {
		const d = n(c, 'n_embd');
		const layer = 2 * d + (d * 3 * d + 3 * d) + (d * d + d) + 2 * d + (d * 4 * d + 4 * d) + (4 * d * d + d);
		return V * d + n(c, 'n_positions') * d + n(c, 'n_layer') * layer + 2 * d;
	}
	const d = n(c, 'hidden_size');
	const I = n(c, 'intermediate_size');
	const L = n(c, 'num_hidden_layers');
	const head = c.tie_word_embeddings ? 0 : V * d;
	if (model === 'gptneox') {
		const layer = 2 * 2 * d + (d * 3 * d + 3 * d) + (d * d + d) + (d * I + I) + (I * d + d);
		return V * d + L * layer + 2 * d + head;
	}
	const hd = n(c, 'head_dim');
	const q = n(c, 'num_attention_heads') * hd;
	const kv = n(c, 'num_key_value_heads') * hd;
	const attn = d * q + 2 * d * kv + q * d;
	const mlp = 3 * d * I;
	if (model === 'llama') return V * d + L * (attn + mlp + 2 * d) + d + head;
	// gemma3: q_norm and k_norm per head dim, four norms a layer (input, post-attention, pre- and post-feedforward)
	return V * d + L * (attn + 2 * hd + mlp + 4 * d) + d + head;
}

describe('distinct parameters of torch exports', () => {
	for (const model of ['gpt2', 'gptneox', 'llama', 'gemma3']) {
		it(`${model}: equals Hugging Face's num_parameters()`, () => {
			const dir = resolve(fixturesDir, 'torch-exports', model);
			const config = JSON.parse(readFileSync(resolve(dir, 'config.json'), 'utf8')) as Config;
			const d = openExportedDecoder(new Uint8Array(readFileSync(resolve(dir, 'model.onnx'))));
			const data = resolve(dir, 'model.onnx_data');
			const external = existsSync(data) ? [{ path: 'model.onnx_data', data: new Uint8Array(readFileSync(data)) }] : [];
			const expected = hfParameters(model, config);
			const counted = distinctParameterCount(d.graph, d.trace.embedding, external);
			console.log(`${model}: ${counted} distinct parameters (sum of initializers ${d.graph.parameterCount()}, Hugging Face ${expected})`);
			expect(counted).toBe(expected);
			// The tied exports really do store the head twice: the plain sum is off by V·d.
			if (config.tie_word_embeddings) expect(d.graph.parameterCount() - counted).toBe(n(config, 'vocab_size') * d.trace.dModel);
		});
	}
});

describe('tokens per second for people', () => {
	it('keeps one decimal from 1 up, two digits below, seconds per token below 0.1', () => {
		expect(formatRate(12.345)).toBe('12.3 tokens/s');
		expect(formatRate(1)).toBe('1.0 tokens/s');
		expect(formatRate(0.4213)).toBe('0.42 tokens/s');
		expect(formatRate(0.1)).toBe('0.10 tokens/s');
		expect(formatRate(0.07)).toBe('14 s per token');
		expect(formatRate(0.004)).toBe('250 s per token');
		expect(formatRate(0)).toBe('—');
	});
});

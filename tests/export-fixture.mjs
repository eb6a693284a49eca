// Lays out a Hub repo for the catalogue's GPT-2 entry (`Xenova/gpt2`) in tests/.generated-hub,
// served under /hub/ by tests/serve.mjs: a stand-in small enough for SwiftShader. The graph is the
// real ORT-fused tiny GPT-2 export from ../shared/fixtures/onnx-exports (linked, not copied), with
// a word-level tokenizer.json written here for its 1000-token vocabulary.
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { wordLevelTokenizer } from './word-level-tokenizer.mjs';

const here = dirname(fileURLToPath(import.meta.url));
export const fixturesDir = resolve(process.env.LOUPE_FIXTURES ?? resolve(here, '../../shared/fixtures'));
export const fusedGpt2 = resolve(fixturesDir, 'onnx-exports/gpt2_ort_fused_past.onnx');
export const EXPORT_REPO = 'Xenova/gpt2';
export const EOS = 999;

/** Pronounceable words for ids 0…998; id 999 is <|endoftext|>. */
export function vocabulary() {
	const c = 'bdfgklmnprstvz';
	const v = 'aeiou';
	const words = [];
	for (let i = 0; words.length < 999; i++)
		words.push(c[i % 14] + v[Math.floor(i / 14) % 5] + c[Math.floor(i / 70) % 14] + (i >= 980 ? 'x' : ''));
	return [...words, '<|endoftext|>'];
}

/** The chat stand-in's vocabulary: the same words with Gemma's turn markers in place of the first four. */
export function chatVocabulary() {
	const words = vocabulary();
	return ['<start_of_turn>', '<end_of_turn>', 'user', 'model', ...words.slice(4)];
}
export const CHAT_REPO = 'onnx-community/gemma-3-270m-it-ONNX';
// Gemma's chat template, in the shape Gemma's tokenizer_config.json has it (shortened).
export const CHAT_TEMPLATE =
	"{{ bos_token }}{% for m in messages %}<start_of_turn>{{ 'model' if m.role == 'assistant' else m.role }} {{ m.content }} <end_of_turn> {% endfor %}{% if add_generation_prompt %}<start_of_turn>model {% endif %}";

export function writeExportRepo(repo = EXPORT_REPO, chat = false) {
	const dir = resolve(here, '.generated-hub', repo, 'resolve/main');
	rmSync(dir, { recursive: true, force: true });
	mkdirSync(resolve(dir, 'onnx'), { recursive: true });
	symlinkSync(fusedGpt2, resolve(dir, 'onnx/model.onnx'));
	const words = chat ? chatVocabulary() : vocabulary();
	const special = chat ? [0, 1, EOS] : [EOS];
	const tokenizer = wordLevelTokenizer(words, special, '<|endoftext|>');
	writeFileSync(resolve(dir, 'tokenizer.json'), JSON.stringify(tokenizer));
	writeFileSync(
		resolve(dir, 'tokenizer_config.json'),
		JSON.stringify({
			bos_token: '<|endoftext|>',
			eos_token: '<|endoftext|>',
			model_max_length: 512,
			...(chat ? { chat_template: CHAT_TEMPLATE } : {})
		})
	);
	writeFileSync(
		resolve(dir, 'config.json'),
		JSON.stringify({
			model_type: 'gpt2',
			n_layer: 5,
			n_embd: 32,
			n_head: 4,
			n_positions: 512,
			vocab_size: 1000,
			bos_token_id: EOS,
			eos_token_id: EOS
		})
	);
	return dir;
}

/**
 * Files a user would pick to open the model-builder Llama export from disk (fp16, weights in
 * `model.onnx.data`): the graph and its sidecar from ../shared, a word-level tokenizer for its
 * 32000-token vocabulary written to tests/.generated-files/.
 */
export function llamaExportFiles() {
	const dir = resolve(here, '.generated-files/llama-export');
	mkdirSync(dir, { recursive: true });
	const words = Array.from({ length: 32000 }, (_, i) => (i === 2 ? '</s>' : i === 1 ? '<s>' : `t${i}`));
	writeFileSync(resolve(dir, 'tokenizer.json'), JSON.stringify(wordLevelTokenizer(words, [1, 2], '<s>')));
	writeFileSync(resolve(dir, 'tokenizer_config.json'), JSON.stringify({ bos_token: '<s>', eos_token: '</s>' }));
	writeFileSync(
		resolve(dir, 'config.json'),
		JSON.stringify({ model_type: 'llama', bos_token_id: 1, eos_token_id: 2, max_position_embeddings: 2048 })
	);
	const exportDir = resolve(fixturesDir, 'onnx-exports/llama_modelbuilder_fp16');
	return {
		graph: resolve(exportDir, 'model.onnx'),
		weights: resolve(exportDir, 'model.onnx.data'),
		tokenizer: resolve(dir, 'tokenizer.json'),
		tokenizerConfig: resolve(dir, 'tokenizer_config.json'),
		config: resolve(dir, 'config.json')
	};
}

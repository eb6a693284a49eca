// Hub tokenizers (tokenizer.json + tokenizer_config.json) and chat templates, on hand-written files.
import { describe, expect, it } from 'vitest';
import { HubTokenizer } from '../../src/lib/engine/model/hf/tokenizer';
import { wordLevelTokenizer } from '../word-level-tokenizer.mjs';

const words = ['<pad>', '<bos>', '<eos>', '<start_of_turn>', '<end_of_turn>', 'user', 'model', 'hello', 'there', 'cat'];
const tokenizerJson = wordLevelTokenizer(words, [1, 2, 3, 4], '<pad>');
// Gemma's template, shortened to what matters here.
const gemmaTemplate =
	"{{ bos_token }}{% for m in messages %}<start_of_turn>{{ 'model' if m.role == 'assistant' else m.role }} {{ m.content }} <end_of_turn> {% endfor %}{% if add_generation_prompt %}<start_of_turn>model {% endif %}";

describe('Hub tokenizers', () => {
	const tok = new HubTokenizer(
		tokenizerJson,
		{ bos_token: '<bos>', eos_token: '<eos>', chat_template: gemmaTemplate },
		{ bos_token_id: 1, eos_token_id: [2, 4] }
	);
	it('adds BOS once, stops at every end-of-turn id, decodes', () => {
		expect(tok.encode('hello there')).toEqual([1, 7, 8]);
		expect(tok.encode('')).toEqual([1]);
		expect(tok.stopTokens.sort()).toEqual([2, 4]);
		expect(tok.decode([7, 8, 9])).toBe('hello there cat');
	});
	it('chat mode renders the user turn and opens the model turn, BOS written once', () => {
		expect(tok.hasChatTemplate).toBe(true);
		const text = tok.applyChatTemplate('hello cat');
		expect(text).toBe('<start_of_turn>user hello cat <end_of_turn> <start_of_turn>model ');
		expect(tok.encode(text)).toEqual([1, 3, 5, 7, 9, 4, 3, 6]);
	});
	it('streams text with the space the prompt needs before the first new word', () => {
		const d = tok.streamDecoder();
		d.reset(7);
		expect([d.push(8), d.push(9)]).toEqual([' there', ' cat']);
	});
	it('a tokenizer without a chat template leaves prompts as they are', () => {
		const plain = new HubTokenizer(tokenizerJson, { bos_token: '<bos>', eos_token: '<eos>' });
		expect(plain.hasChatTemplate).toBe(false);
		expect(plain.applyChatTemplate('hello')).toBe('hello');
	});
});

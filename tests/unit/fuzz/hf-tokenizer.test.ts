// Fuzz: Hub tokenizers (tokenizer.json + tokenizer_config.json + config.json) through HubTokenizer:
// a small WordLevel and a small byte-level BPE tokenizer written here, one value at a time made
// hostile (models, vocabularies, merges, added tokens, special tokens, chat templates); accepted
// tokenizers encode and decode random text and render the chat template, as the app does next.
import { afterAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { HubTokenizer } from '../../../src/lib/engine/model/hf/tokenizer';
import { LoupeError } from '../../../src/lib/engine/errors';
import { fuzz, runCase, Tally } from '../../fuzz/harness';
import { mutatedJson } from '../../fuzz/json';
import { wordLevelTokenizer } from '../../word-level-tokenizer.mjs';

const tally = new Tally('tokenizer.json / tokenizer_config.json');
afterAll(() => console.log(tally.line()));

const words = ['<pad>', '<bos>', '<eos>', 'hello', 'there', 'cat'];
const wordLevel = wordLevelTokenizer(words, [1, 2], '<pad>');
// Byte-level BPE in GPT-2's layout: single-byte pieces (as GPT-2's byte-to-unicode map writes them) and merges.
const bpeVocab: Record<string, number> = {
	'<|endoftext|>': 0,
	h: 1,
	e: 2,
	l: 3,
	o: 4,
	Ġ: 5,
	he: 6,
	ll: 7,
	hell: 8,
	hello: 9,
	Ġh: 10,
	c: 11,
	a: 12,
	t: 13
};
const bpe = {
	version: '1.0',
	truncation: null,
	padding: null,
	added_tokens: [{ id: 0, content: '<|endoftext|>', single_word: false, lstrip: false, rstrip: false, normalized: true, special: true }],
	normalizer: null,
	pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
	post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
	decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
	model: {
		type: 'BPE',
		dropout: null,
		unk_token: null,
		continuing_subword_prefix: '',
		end_of_word_suffix: '',
		fuse_unk: false,
		byte_fallback: false,
		vocab: bpeVocab,
		merges: ['h e', 'l l', 'he ll', 'hell o', 'Ġ h']
	}
};
const config = {
	bos_token: '<bos>',
	eos_token: { content: '<eos>' },
	chat_template:
		'{{ bos_token }}{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}model:{% endif %}'
};
const modelConfig = { bos_token_id: 1, eos_token_id: [2] };
const hostile = [
	'WordLevel',
	'BPE',
	'Unigram',
	'WordPiece',
	'ByteLevel',
	'{% for %}',
	'{{ x.y.z() }}',
	'{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}',
	[['a', 'b']],
	['a b c'],
	{ '': 0 },
	{ a: -1 },
	{ a: 1e9 }
];

const lib = { libraryMarker: 'library failed on it:' };
const use = (t: HubTokenizer, text: string) => {
	const ids = t.encode(text);
	t.decode(ids);
	t.pieceText(ids[0] ?? 0);
	if (t.hasChatTemplate) t.applyChatTemplate(text);
	const d = t.streamDecoder();
	d.reset(ids[0] ?? 0);
	for (const id of ids) d.push(id);
};

describe('fuzz: Hub tokenizers', () => {
	it('the valid tokenizers work', () => {
		const w = new HubTokenizer(wordLevel, config, modelConfig);
		expect(w.encode('hello there')).toEqual([1, 3, 4]);
		const b = new HubTokenizer(bpe, {}, {});
		expect(b.decode(b.encode('hello cat'))).toBe('hello cat');
	});

	for (const [name, doc] of [
		['WordLevel', wordLevel],
		['byte-level BPE', bpe]
	] as const)
		it(`${name} tokenizer.json, one value at a time; accepted ones encode, decode and stream`, () => {
			fuzz(
				tally,
				fc.tuple(mutatedJson(doc, hostile), fc.string({ maxLength: 16 })),
				([{ text }, prompt]) =>
					runCase(
						text.length,
						() => {
							let json: unknown;
							try {
								json = JSON.parse(text);
							} catch {
								return; // the app's JSON.parse refuses it before HubTokenizer sees it
							}
							use(new HubTokenizer(json as Record<string, unknown>, config, modelConfig), prompt);
						},
						lib
					),
				300
			);
		});

	it('tokenizer_config.json and config.json, one value at a time (special tokens, chat templates, ids)', () => {
		fuzz(
			tally,
			fc.tuple(mutatedJson({ ...config, modelConfig }, hostile), fc.string({ maxLength: 16 })),
			([{ text }, prompt]) =>
				runCase(
					text.length,
					() => {
						let j: Record<string, unknown>;
						try {
							j = JSON.parse(text);
						} catch {
							return;
						}
						if (!j || typeof j !== 'object') j = {};
						const mc = (j.modelConfig && typeof j.modelConfig === 'object' ? j.modelConfig : {}) as Record<string, unknown>;
						use(new HubTokenizer(wordLevel, j, mc), prompt);
					},
					lib
				),
			400
		);
	});

	// Counterexamples fuzzing found, kept as plain cases.
	it('a bos_token whose content is an object with toString 1 is no token (it threw a TypeError)', () => {
		const t = new HubTokenizer(wordLevel, { bos_token: { content: { toString: 1 } } }, {});
		expect(t.startToken).toBeUndefined();
		expect(t.encode('')).toEqual([]);
		expect(t.decode([])).toBe('');
	});

	it.each([
		['a model of unknown type', { ...wordLevel, model: { type: 'Nope' } }, /its "model" is not one of the tokenizers library's models/],
		[
			'added tokens without "special"',
			{ ...wordLevel, added_tokens: [{ id: 1, content: '<bos>' }] },
			/its "added_tokens" is not a list of \{id, content, special\}/
		],
		[
			'a BPE model whose merges are numbers',
			{ ...bpe, model: { ...bpe.model, merges: [1, 2] } },
			/its BPE "model.merges" is not a list of merges/
		]
	])('%s is refused with a message naming the field', (_, json, message) => {
		expect(() => new HubTokenizer(json as never, config, {})).toThrow(LoupeError);
		expect(() => new HubTokenizer(json as never, config, {})).toThrow(message);
	});
});

/**
 * Tokenizers of Hub models (`tokenizer.json` + `tokenizer_config.json`) through
 * `@huggingface/tokenizers`, the tokenizer library inside transformers.js, without the rest of it
 * (transformers.js would bring a second onnxruntime-web and onnxruntime-node).
 */
import { Tokenizer } from '@huggingface/tokenizers';
import { Template } from '@huggingface/jinja';
import { LoupeError } from '../../errors';
import type { TextTokenizer } from '../generate';

type Json = Record<string, unknown>;

function tokenContent(t: unknown): string | undefined {
	if (typeof t === 'string') return t;
	// Only a string content: String() of an object whose toString is not a function would throw.
	if (t && typeof t === 'object' && typeof (t as { content?: unknown }).content === 'string') return (t as { content: string }).content;
	return undefined;
}

const MODEL_TYPES = ['BPE', 'WordLevel', 'WordPiece', 'Unigram'];
const isObject = (v: unknown): v is Json => !!v && typeof v === 'object' && !Array.isArray(v);

/**
 * The fields of tokenizer.json the tokenizers library reads without checking, checked here so a
 * damaged file is refused naming the field rather than by a TypeError deep inside the library.
 */
function checkTokenizerJson(j: unknown, name: string): void {
	const bad = (why: string) =>
		new LoupeError(
			'not-a-tokenizer',
			`${name} is not a Hugging Face tokenizer: ${why}.`,
			'Check that the repository has a tokenizer.json from the tokenizers library.'
		);
	if (!isObject(j)) throw bad('it is not a JSON object');
	const m = j.model;
	if (!isObject(m) || typeof m.type !== 'string' || !MODEL_TYPES.includes(m.type))
		throw bad(`its "model" is not one of the tokenizers library's models (${MODEL_TYPES.join(', ')}) with a "type"`);
	if (m.type === 'Unigram') {
		if (!Array.isArray(m.vocab) || !m.vocab.every((e) => Array.isArray(e) && typeof e[0] === 'string' && typeof e[1] === 'number'))
			throw bad('its Unigram "model.vocab" is not a list of [piece, score] pairs');
	} else if (!isObject(m.vocab) || !Object.values(m.vocab).every((id) => Number.isInteger(id) && (id as number) >= 0))
		throw bad('its "model.vocab" is not an object of pieces to token ids');
	if (
		m.type === 'BPE' &&
		!(
			Array.isArray(m.merges) &&
			m.merges.every((x) => typeof x === 'string' || (Array.isArray(x) && x.length === 2 && x.every((p) => typeof p === 'string')))
		)
	)
		throw bad('its BPE "model.merges" is not a list of merges ("a b" or ["a", "b"])');
	for (const k of ['unk_token', 'continuing_subword_prefix', 'end_of_word_suffix'])
		if (m[k] != null && typeof m[k] !== 'string') throw bad(`its "model.${k}" is not a string`);
	if (
		j.added_tokens != null &&
		!(
			Array.isArray(j.added_tokens) &&
			j.added_tokens.every((t) => isObject(t) && Number.isInteger(t.id) && typeof t.content === 'string' && typeof t.special === 'boolean')
		)
	)
		throw bad('its "added_tokens" is not a list of {id, content, special}');
	for (const k of ['normalizer', 'pre_tokenizer', 'post_processor', 'decoder'])
		if (j[k] != null && !(isObject(j[k]) && typeof (j[k] as Json).type === 'string'))
			throw bad(`its "${k}" is not an object with a "type"`);
}

export class HubTokenizer implements TextTokenizer {
	private tok: Tokenizer;
	readonly stopTokens: number[];
	/** The token a text starts with: BOS where the model has one, else the end-of-text token (GPT-2). */
	readonly startToken: number | undefined;
	private addStart: boolean;
	private chatTemplate: Template | null = null;
	private specials: { bos_token?: string; eos_token?: string };

	constructor(
		tokenizerJson: Json,
		tokenizerConfig: Json,
		modelConfig: Json = {},
		private readonly name = 'tokenizer.json'
	) {
		checkTokenizerJson(tokenizerJson, name);
		if (!isObject(tokenizerConfig))
			throw new LoupeError(
				'not-a-tokenizer',
				'tokenizer_config.json is not a JSON object.',
				'Check that the repository has a tokenizer_config.json, or leave it out.'
			);
		if (!isObject(modelConfig))
			throw new LoupeError(
				'not-a-tokenizer',
				'config.json is not a JSON object.',
				'Check that the repository has a config.json from transformers.'
			);
		// The library checks little of what it reads: whatever it throws, here or on the first
		// encode below, is said as this file's failure.
		const libraryFailed = (e: unknown) =>
			new LoupeError(
				'not-a-tokenizer',
				`${name} could not be read as a Hugging Face tokenizer (the tokenizers library failed on it: ${e instanceof Error ? e.message : String(e)}).`,
				'Check that the repository has a tokenizer.json from the tokenizers library.'
			);
		try {
			this.tok = new Tokenizer(tokenizerJson, tokenizerConfig);
		} catch (e) {
			throw libraryFailed(e);
		}
		const id = (t: unknown) => {
			const c = tokenContent(t);
			return c === undefined ? undefined : this.tok.token_to_id(c);
		};
		const eos = [modelConfig.eos_token_id].flat().filter((x): x is number => typeof x === 'number' && Number.isInteger(x) && x >= 0);
		const eosFromConfig = id(tokenizerConfig.eos_token);
		this.stopTokens = [...new Set([...eos, ...(eosFromConfig !== undefined ? [eosFromConfig] : [])])];
		const bos =
			(Number.isInteger(modelConfig.bos_token_id) && (modelConfig.bos_token_id as number) >= 0
				? (modelConfig.bos_token_id as number)
				: undefined) ?? id(tokenizerConfig.bos_token);
		this.startToken = bos ?? this.stopTokens[0];
		this.specials = { bos_token: tokenContent(tokenizerConfig.bos_token), eos_token: tokenContent(tokenizerConfig.eos_token) };
		const template = tokenizerConfig.chat_template;
		const named = Array.isArray(template) ? template.find((t) => t?.name === 'default')?.template : undefined;
		const source = typeof template === 'string' ? template : typeof named === 'string' ? named : undefined;
		if (source) {
			try {
				this.chatTemplate = new Template(source);
			} catch (e) {
				throw new LoupeError(
					'not-a-tokenizer',
					`The chat template in tokenizer_config.json does not parse (${(e as Error).message}).`,
					'Chat mode is off for this model; plain prompts still work.'
				);
			}
		}
		// Does the post-processor add BOS by itself? Then encode() must not add it again.
		let probe: number[];
		try {
			probe = this.tok.encode('a').ids;
		} catch (e) {
			throw libraryFailed(e);
		}
		this.addStart = this.startToken !== undefined && probe[0] !== this.startToken;
	}

	/**
	 * Runs the tokenizers library: a file it accepted can still make it throw on some text (a decoder
	 * field of the wrong type is read only then); that is said as the tokenizer file's failure.
	 */
	private library<T>(f: () => T): T {
		try {
			return f();
		} catch (e) {
			throw new LoupeError(
				'not-a-tokenizer',
				`${this.name} could not be used as a Hugging Face tokenizer (the tokenizers library failed on it: ${e instanceof Error ? e.message : String(e)}).`,
				'Check that the repository has a tokenizer.json from the tokenizers library, or pick another model.'
			);
		}
	}

	get hasChatTemplate(): boolean {
		return this.chatTemplate !== null;
	}

	/**
	 * The prompt as the user's turn of a chat, with the turn that opens the model's answer
	 * (add_generation_prompt), as the model was tuned to read it. A leading BOS the template writes
	 * is left to encode(), which adds it as a token.
	 */
	applyChatTemplate(prompt: string): string {
		if (!this.chatTemplate) return prompt;
		let text: string;
		try {
			text = this.chatTemplate.render({ messages: [{ role: 'user', content: prompt }], add_generation_prompt: true, ...this.specials });
		} catch (e) {
			throw new LoupeError(
				'not-a-tokenizer',
				`The chat template in tokenizer_config.json failed to render the prompt (the jinja library failed on it: ${e instanceof Error ? e.message : String(e)}).`,
				'Turn chat mode off for this model; plain prompts still work.'
			);
		}
		const bos = this.specials.bos_token;
		return bos && text.startsWith(bos) ? text.slice(bos.length) : text;
	}

	/** Token ids of a text, starting with the start token (so an empty prompt still has one). */
	encode(text: string): number[] {
		const ids = text ? this.library(() => this.tok.encode(text).ids) : [];
		if (this.startToken === undefined) return ids; // no BOS and no EOS anywhere: nothing to start with
		if (this.addStart || ids.length === 0) return [this.startToken, ...ids];
		return ids;
	}

	decode(ids: number[]): string {
		if (!ids.length) return ''; // the library refuses an empty list
		return this.library(() => this.tok.decode(ids, { skip_special_tokens: true }));
	}

	pieceText(id: number): string {
		return this.library(() => this.tok.decode([id], { skip_special_tokens: false }));
	}

	/**
	 * Decodes a growing list of tokens, emitting only what each token adds. The text is decoded
	 * after the prompt's last token, so word-level and byte-level tokenizers alike get the space
	 * (or the merge) between the prompt and the first new token right.
	 */
	streamDecoder() {
		let context: number[] = [];
		let ids: number[] = [];
		let emitted = '';
		const decodeAll = () => this.decode([...context, ...ids]).slice(this.decode(context).length);
		return {
			push: (token: number): string => {
				ids.push(token);
				const text = decodeAll();
				if (text.endsWith('\uFFFD')) return ''; // an incomplete UTF-8 sequence: wait for the rest
				const piece = text.slice(emitted.length);
				emitted = text;
				return piece;
			},
			reset: (last: number) => {
				context = [last];
				ids = [];
				emitted = '';
			}
		};
	}
}

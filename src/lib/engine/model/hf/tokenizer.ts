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
	if (t && typeof t === 'object' && 'content' in t) return String((t as { content: unknown }).content);
	return undefined;
}

export class HubTokenizer implements TextTokenizer {
	private tok: Tokenizer;
	readonly stopTokens: number[];
	/** The token a text starts with: BOS where the model has one, else the end-of-text token (GPT-2). */
	readonly startToken: number | undefined;
	private addStart: boolean;
	private chatTemplate: Template | null = null;
	private specials: { bos_token?: string; eos_token?: string };

	constructor(tokenizerJson: Json, tokenizerConfig: Json, modelConfig: Json = {}, name = 'tokenizer.json') {
		try {
			this.tok = new Tokenizer(tokenizerJson, tokenizerConfig);
		} catch (e) {
			throw new LoupeError('not-a-tokenizer', `${name} could not be read as a Hugging Face tokenizer (${(e as Error).message}).`, 'Check that the repository has a tokenizer.json from the tokenizers library.');
		}
		const id = (t: unknown) => {
			const c = tokenContent(t);
			return c === undefined ? undefined : this.tok.token_to_id(c);
		};
		const eos = [modelConfig.eos_token_id].flat().filter((x): x is number => typeof x === 'number');
		const eosFromConfig = id(tokenizerConfig.eos_token);
		this.stopTokens = [...new Set([...eos, ...(eosFromConfig !== undefined ? [eosFromConfig] : [])])];
		const bos = (typeof modelConfig.bos_token_id === 'number' ? modelConfig.bos_token_id : undefined) ?? id(tokenizerConfig.bos_token);
		this.startToken = bos ?? this.stopTokens[0];
		this.specials = { bos_token: tokenContent(tokenizerConfig.bos_token), eos_token: tokenContent(tokenizerConfig.eos_token) };
		const template = tokenizerConfig.chat_template;
		const source = typeof template === 'string' ? template : Array.isArray(template) ? (template.find((t) => t?.name === 'default')?.template as string | undefined) : undefined;
		if (source) {
			try {
				this.chatTemplate = new Template(source);
			} catch (e) {
				throw new LoupeError('not-a-tokenizer', `The chat template in tokenizer_config.json does not parse (${(e as Error).message}).`, 'Chat mode is off for this model; plain prompts still work.');
			}
		}
		// Does the post-processor add BOS by itself? Then encode() must not add it again.
		const probe = this.tok.encode('a').ids;
		this.addStart = this.startToken !== undefined && probe[0] !== this.startToken;
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
		const text = this.chatTemplate.render({ messages: [{ role: 'user', content: prompt }], add_generation_prompt: true, ...this.specials });
		const bos = this.specials.bos_token;
		return bos && text.startsWith(bos) ? text.slice(bos.length) : text;
	}

	/** Token ids of a text, starting with the start token (so an empty prompt still has one). */
	encode(text: string): number[] {
		const ids = text ? this.tok.encode(text).ids : [];
		if (this.addStart || ids.length === 0) return [this.startToken!, ...ids];
		return ids;
	}

	decode(ids: number[]): string {
		return this.tok.decode(ids, { skip_special_tokens: true });
	}

	pieceText(id: number): string {
		return this.tok.decode([id], { skip_special_tokens: false });
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

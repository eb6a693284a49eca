/**
 * Tokenizers of Hub models (`tokenizer.json` + `tokenizer_config.json`) through
 * `@huggingface/tokenizers`, the tokenizer library inside transformers.js, without the rest of it
 * (transformers.js would bring a second onnxruntime-web and onnxruntime-node).
 */
import { Tokenizer } from '@huggingface/tokenizers';
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
		// Does the post-processor add BOS by itself? Then encode() must not add it again.
		const probe = this.tok.encode('a').ids;
		this.addStart = this.startToken !== undefined && probe[0] !== this.startToken;
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

/**
 * The llama2.c tokenizer (`tokenizer.bin` / `tok512.bin`), encoding and decoding exactly as
 * llama2.c's run.c does: a dummy-prefix space, UTF-8 code points looked up whole with byte
 * fallback (<0xNN> = byte + 3), then greedy merging of the best-scoring adjacent pair.
 *
 * Pieces are kept as "binary strings" (one char per byte) so lookups compare bytes, like C's strcmp.
 */
import { LoupeError } from '../../errors';

export const BOS = 1;
export const EOS = 2;

export class Llama2cTokenizer {
	/** run.c stops when the model writes BOS (sequences are delimited by it); EOS ends text too. */
	readonly stopTokens = [BOS, EOS];
	readonly vocab: string[]; // binary strings
	readonly scores: Float32Array;
	private readonly lookup = new Map<string, number>();
	private readonly pieceBytes: Uint8Array[];

	constructor(buf: ArrayBuffer, vocabSize: number, name = 'The tokenizer file') {
		const dv = new DataView(buf);
		const bad = (why: string) =>
			new LoupeError(
				'not-a-tokenizer',
				`${name} is not a llama2.c tokenizer for a ${vocabSize}-token model: ${why}.`,
				'Choose the tokenizer .bin that was exported with this model (e.g. tok512.bin for stories260K).'
			);
		if (!Number.isInteger(vocabSize) || vocabSize <= 0)
			throw new LoupeError(
				'tokenizer-mismatch',
				`The model's vocabulary size ${vocabSize} is not a positive number of tokens, so no tokenizer fits it.`,
				'Choose a checkpoint written by llama2.c.'
			);
		if (buf.byteLength < 4) throw bad('it is empty');
		// Each token takes at least 8 bytes (score, length): the tables are sized only once the file can hold them.
		if (4 + 8 * vocabSize > buf.byteLength)
			throw bad(`its ${buf.byteLength.toLocaleString('en')} bytes cannot hold ${vocabSize.toLocaleString('en')} tokens`);
		let p = 4; // max_token_length: not needed, pieces carry their own lengths
		this.vocab = new Array(vocabSize);
		this.scores = new Float32Array(vocabSize);
		this.pieceBytes = new Array(vocabSize);
		for (let i = 0; i < vocabSize; i++) {
			if (p + 8 > buf.byteLength) throw bad(`it ends after ${i} of ${vocabSize} tokens`);
			this.scores[i] = dv.getFloat32(p, true);
			const len = dv.getInt32(p + 4, true);
			p += 8;
			if (len < 0 || len > 1024 || p + len > buf.byteLength) throw bad(`token ${i} has an impossible length ${len}`);
			const bytes = new Uint8Array(buf, p, len).slice();
			p += len;
			this.pieceBytes[i] = bytes;
			const s = String.fromCharCode(...bytes);
			this.vocab[i] = s;
			if (!this.lookup.has(s)) this.lookup.set(s, i);
		}
		if (p !== buf.byteLength)
			throw new LoupeError(
				'tokenizer-mismatch',
				`${name} holds more than ${vocabSize} tokens, but the model has a vocabulary of ${vocabSize}.`,
				'Choose the tokenizer that belongs to this model.'
			);
	}

	get vocabSize() {
		return this.vocab.length;
	}

	/** run.c `encode`: returns token ids. */
	encode(text: string, bos = true, eos = false): number[] {
		const bytes = new TextEncoder().encode(text);
		const tokens: number[] = [];
		if (bos) tokens.push(BOS);
		if (bytes.length > 0) {
			const dummy = this.lookup.get(' ');
			if (dummy !== undefined) tokens.push(dummy);
		}
		// Walk UTF-8 code points (at most 4 bytes each), looking each up whole.
		let buf: number[] = [];
		for (let i = 0; i < bytes.length; i++) {
			if ((bytes[i] & 0xc0) !== 0x80) buf = [];
			buf.push(bytes[i]);
			const next = i + 1 < bytes.length ? bytes[i + 1] : 0;
			if ((next & 0xc0) === 0x80 && buf.length < 4) continue;
			const id = this.lookup.get(String.fromCharCode(...buf));
			if (id !== undefined) tokens.push(id);
			else for (const b of buf) tokens.push(b + 3); // byte fallback: <0x00> is id 3
			buf = [];
		}
		// Merge the best-scoring adjacent pair until none merges.
		for (;;) {
			let bestScore = -1e10;
			let bestId = -1;
			let bestIdx = -1;
			for (let i = 0; i < tokens.length - 1; i++) {
				const id = this.lookup.get(this.vocab[tokens[i]] + this.vocab[tokens[i + 1]]);
				if (id !== undefined && this.scores[id] > bestScore) {
					bestScore = this.scores[id];
					bestId = id;
					bestIdx = i;
				}
			}
			if (bestIdx === -1) break;
			tokens.splice(bestIdx, 2, bestId);
		}
		if (eos) tokens.push(EOS);
		return tokens;
	}

	/**
	 * run.c `decode` + `safe_printf`: the bytes `token` prints after `prevToken`.
	 * The leading space of the first piece after BOS is dropped; <0xNN> pieces are raw bytes;
	 * a lone non-printable control byte prints nothing.
	 */
	decodeBytes(prevToken: number, token: number): Uint8Array {
		let bytes = this.pieceBytes[token];
		if (!bytes) return new Uint8Array(0);
		if (prevToken === BOS && bytes[0] === 0x20) bytes = bytes.subarray(1);
		const m = /^<0x([0-9A-Fa-f]{2})>/.exec(this.vocab[token]);
		if (m) bytes = Uint8Array.of(parseInt(m[1], 16));
		if (bytes.length === 1) {
			const b = bytes[0];
			const printable = (b >= 0x20 && b < 0x7f) || (b >= 0x09 && b <= 0x0d) || b >= 0x80; // >=0x80: part of UTF-8
			if (!printable) return new Uint8Array(0);
		}
		return bytes;
	}

	/** A streaming decoder: feed token ids, get text, multi-byte characters held until complete. */
	streamDecoder() {
		const td = new TextDecoder('utf-8');
		let prev = BOS;
		return {
			push: (token: number): string => {
				const s = td.decode(this.decodeBytes(prev, token), { stream: true });
				prev = token;
				return s;
			},
			/** Restart after a prompt: `last` is the final prompt token. */
			reset: (last: number) => {
				prev = last;
			}
		};
	}

	/** Decodes a whole sequence that starts after `prev` (BOS by default). */
	decode(tokens: number[], prev = BOS): string {
		const d = this.streamDecoder();
		d.reset(prev);
		return tokens.map((t) => d.push(t)).join('');
	}

	/** The piece as a person reads it in a token strip (spaces shown, bytes as <0xNN>). */
	pieceText(token: number): string {
		if (token === BOS || token === EOS) return this.vocab[token].trim(); // stored as "\n<s>\n"
		const b = this.pieceBytes[token];
		return b ? new TextDecoder().decode(b) : `<${token}>`;
	}
}

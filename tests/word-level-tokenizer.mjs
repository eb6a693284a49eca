/**
 * A `tokenizer.json` in the Hugging Face tokenizers format for a word-level vocabulary: words split
 * on whitespace, each word one id, `specialIds` as special added tokens. The tests write these by
 * hand (from the format, not from Loupe's reader) for models whose real tokenizer is not here.
 *
 * @param {string[]} words the vocabulary, id = index
 * @param {number[]} specialIds ids of the special tokens (BOS, EOS, chat markers)
 * @param {string} unkToken the word unknown text maps to
 */
export function wordLevelTokenizer(words, specialIds, unkToken) {
	return {
		version: '1.0',
		truncation: null,
		padding: null,
		added_tokens: specialIds.map((id) => ({
			id,
			content: words[id],
			single_word: false,
			lstrip: false,
			rstrip: false,
			normalized: false,
			special: true
		})),
		normalizer: null,
		pre_tokenizer: { type: 'WhitespaceSplit' },
		post_processor: null,
		decoder: { type: 'WordPiece', prefix: '##', cleanup: false },
		model: { type: 'WordLevel', vocab: Object.fromEntries(words.map((w, i) => [w, i])), unk_token: unkToken }
	};
}

/**
 * The defaults' corpus: stories stories260K writes itself, with Loupe's own runner and sampler on
 * onnxruntime-web's wasm EP in Node (a token a few milliseconds: on SwiftShader's WebGPU each token
 * is ~250 GPU dispatches, 40× slower). Seeded per story, so the corpus is the same on every run.
 */
import * as ort from 'onnxruntime-web';
import { readLlama2cCheckpoint } from '../../src/lib/engine/model/llama2c/checkpoint';
import { Llama2cTokenizer, BOS } from '../../src/lib/engine/model/llama2c/tokenizer';
import { buildLlamaOnnx } from '../../src/lib/engine/model/llama2c/to-onnx';
import { SegmentRunner } from '../../src/lib/engine/model/runner';
import { generateIds } from '../../src/lib/engine/model/generate';
import { defaultSampling } from '../../src/lib/engine/sample/sampler';

export interface Corpus {
	/** One story a line: the text the trainer and the corpus run read (a text corpus). */
	text: string;
	stories: number;
	tokens: number;
}

/** `stories` stories of at most `storyTokens` tokens each, story i sampled with seed `seed + i`. */
export async function writeCorpus(
	checkpoint: ArrayBuffer,
	tokenizerBytes: ArrayBuffer,
	stories: number,
	storyTokens: number,
	seed: number
): Promise<Corpus> {
	const weights = readLlama2cCheckpoint(checkpoint, 'stories260K.bin');
	const tokenizer = new Llama2cTokenizer(tokenizerBytes, weights.config.vocabSize, 'tok512.bin');
	ort.env.wasm.numThreads = 1;
	ort.env.logLevel = 'error';
	const runner = await SegmentRunner.create(ort, buildLlamaOnnx(weights, []), 'wasm');
	const lines: string[] = [];
	let tokens = 0;
	try {
		for (let i = 0; i < stories; i++) {
			const r = await generateIds(
				runner,
				null,
				[BOS],
				{ ...defaultSampling, temperature: 1, topP: 0.95, maxTokens: storyTokens, seed: seed + i },
				{ stopTokens: [BOS] }
			);
			tokens += r.tokens.length;
			// One story a line: the corpus reader splits text at newlines.
			const text = tokenizer.decode(r.tokens).replace(/\s+/g, ' ').trim();
			if (text) lines.push(text);
		}
	} finally {
		await runner.dispose();
	}
	return { text: lines.join('\n'), stories: lines.length, tokens };
}

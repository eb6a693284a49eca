/**
 * A corpus as model contexts (BOS first, at most 128 tokens): text split into paragraphs and
 * windows, or stories the model writes (sampled, seeded). Corpus runs and SAE training read these.
 */
import { LoupeError } from '../errors';
import { generate } from './generate';
import { defaultSampling } from '../sample/sampler';
import type { Loaded, ModelSession } from './session';

export interface CorpusSpec {
	name: string;
	text?: string; // a text file's contents or pasted text
	stories?: number; // or: let the model write this many stories…
	storyTokens?: number; // …of this many tokens
	seed?: number;
}

export interface CorpusProgress {
	phase: 'writing' | 'encoding';
	done: number;
	total: number;
	tokens: number;
}

/** Call under the session's lock; the session's Stop ends it (an AbortError). */
export async function corpusContexts(
	session: ModelSession,
	m: Loaded,
	spec: CorpusSpec,
	onProgress: (p: CorpusProgress) => void
): Promise<number[][]> {
	const window = Math.min(128, m.source.shape.maxSeqLen);
	const contexts: number[][] = [];
	if (spec.text !== undefined) {
		for (const para of spec.text
			.split(/\n+/)
			.map((p) => p.trim())
			.filter(Boolean)) {
			const ids = m.tokenizer.encode(para);
			for (let i = 1; i < ids.length; i += window - 1) contexts.push([ids[0], ...ids.slice(i, i + window - 1)]);
		}
	} else {
		if (!m.source.lmHead)
			throw new LoupeError(
				'model-failed',
				'This export has no LM head: it cannot write stories for a corpus.',
				'Paste some text or choose a text file as the corpus.'
			);
		const n = spec.stories ?? 16;
		for (let i = 0; i < n; i++) {
			if (session.stopped) throw new DOMException('stopped', 'AbortError');
			const r = await generate(
				m.runner,
				m.tokenizer,
				m.processor,
				'',
				{
					...defaultSampling,
					temperature: 1,
					topP: 0.95,
					maxTokens: Math.min(spec.storyTokens ?? 64, window - 1),
					seed: (spec.seed ?? 1) + i
				},
				() => {},
				() => session.stopped
			);
			contexts.push([m.tokenizer.encode('')[0], ...r.tokens]);
			onProgress({ phase: 'writing', done: i + 1, total: n, tokens: contexts.reduce((a, c) => a + c.length, 0) });
		}
	}
	return contexts;
}

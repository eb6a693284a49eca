/**
 * Picks the next token from processed logits and probabilities (see gpu/logits-process.ts):
 * greedy argmax when temperature is 0, else top-k then top-p (nucleus) filtering and a draw from
 * the renormalised distribution with the seeded PRNG.
 */
export interface SamplingSettings {
	temperature: number;
	topP: number; // 1 = off
	topK: number; // 0 = off
	freqPenalty: number;
	maxTokens: number;
	seed: number;
}

export const defaultSampling: SamplingSettings = {
	temperature: 0.8,
	topP: 0.9,
	topK: 0,
	freqPenalty: 0,
	maxTokens: 256,
	seed: 42
};

/** The first index of the largest value (run.c's argmax). */
export function argmax(a: ArrayLike<number>): number {
	let best = 0;
	for (let i = 1; i < a.length; i++) if (a[i] > a[best]) best = i;
	return best;
}

export function sampleToken(
	processed: { logits: Float32Array; probs: Float32Array },
	s: Pick<SamplingSettings, 'temperature' | 'topP' | 'topK'>,
	random: () => number
): number {
	if (s.temperature <= 0) return argmax(processed.logits);
	const { probs } = processed;
	const order = Array.from(probs.keys()).sort((a, b) => probs[b] - probs[a] || a - b);
	let keep = s.topK > 0 ? Math.min(s.topK, order.length) : order.length;
	if (s.topP > 0 && s.topP < 1) {
		let cum = 0;
		for (let i = 0; i < keep; i++) {
			cum += probs[order[i]];
			if (cum > s.topP) {
				keep = i + 1;
				break;
			}
		}
	}
	let total = 0;
	for (let i = 0; i < keep; i++) total += probs[order[i]];
	const r = random() * total;
	let cdf = 0;
	for (let i = 0; i < keep; i++) {
		cdf += probs[order[i]];
		if (r < cdf) return order[i];
	}
	return order[keep - 1];
}

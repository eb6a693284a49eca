import { describe, expect, it } from 'vitest';
import { argmax, sampleToken } from '../../src/lib/engine/sample/sampler';
import { seededRandom } from '../../src/lib/engine/sample/prng';

const probs = new Float32Array([0.05, 0.5, 0.2, 0.15, 0.1]);
const logits = probs.map(Math.log);
const processed = { logits, probs };

describe('sampling', () => {
	it('temperature 0 is argmax of the processed logits (first index on ties, as run.c)', () => {
		expect(sampleToken(processed, { temperature: 0, topP: 0.5, topK: 3 }, Math.random)).toBe(1);
		expect(argmax([1, 3, 3, 2])).toBe(1);
	});

	it('draws follow the distribution (10,000 draws, each probability within 0.02)', () => {
		const r = seededRandom(1);
		const counts = new Array(5).fill(0);
		for (let i = 0; i < 10_000; i++) counts[sampleToken(processed, { temperature: 1, topP: 1, topK: 0 }, r)]++;
		counts.forEach((n, i) => expect(Math.abs(n / 10_000 - probs[i])).toBeLessThan(0.02));
	});

	it('top-k keeps the k most likely tokens, renormalised', () => {
		const r = seededRandom(2);
		const counts = new Array(5).fill(0);
		for (let i = 0; i < 6_000; i++) counts[sampleToken(processed, { temperature: 1, topP: 1, topK: 2 }, r)]++;
		expect(counts[0] + counts[3] + counts[4]).toBe(0);
		expect(Math.abs(counts[1] / 6_000 - 0.5 / 0.7)).toBeLessThan(0.02);
	});

	it('top-p keeps the smallest set whose mass exceeds p', () => {
		const r = seededRandom(3);
		const seen = new Set<number>();
		for (let i = 0; i < 2_000; i++) seen.add(sampleToken(processed, { temperature: 1, topP: 0.6, topK: 0 }, r));
		expect([...seen].sort()).toEqual([1, 2]); // 0.5 + 0.2 > 0.6
	});

	it('a seed gives the same stream; another seed another', () => {
		const a = seededRandom(42);
		const b = seededRandom(42);
		const c = seededRandom(43);
		const xs = Array.from({ length: 5 }, a);
		expect(Array.from({ length: 5 }, b)).toEqual(xs);
		expect(Array.from({ length: 5 }, c)).not.toEqual(xs);
		expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
	});
});

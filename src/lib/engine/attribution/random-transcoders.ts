/**
 * Seeded random transcoders for every layer of a model: inputs for checking the attribution's
 * machinery (completeness, edges against finite differences, GPU against TS) before any trained
 * transcoder exists. Their features mean nothing and their error nodes carry most of each MLP.
 * JumpReLU at even layers, ReLU with a skip connection at odd ones, so every path is exercised.
 */
import { seededRandom } from '../sample/prng';
import type { Transcoder } from './transcoder';

export function randomTranscoders(c: { dim: number; nLayers: number }, seed: number, dSae = 24): Transcoder[] {
	const rnd = seededRandom(seed);
	const u = (n: number, s: number) => Float32Array.from({ length: n }, () => (rnd() * 2 - 1) * s);
	const d = c.dim;
	return Array.from({ length: c.nLayers }, (_, layer) => ({
		layer,
		dIn: d,
		dSae,
		dOut: d,
		wEnc: u(d * dSae, 0.3),
		bEnc: u(dSae, 0.1),
		wDec: u(dSae * d, 0.2),
		bDec: u(d, 0.05),
		threshold: layer % 2 === 0 ? Float32Array.from({ length: dSae }, () => rnd() * 0.2) : undefined,
		wSkip: layer % 2 === 1 ? u(d * d, 0.05) : undefined,
		name: `random-${seed}-L${layer}`
	}));
}

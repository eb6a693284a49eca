/**
 * What every benchmark prints: one JSON line per shape, `ratio` always "how many times better than
 * the peer run in the same page on the same adapter" (>1 is better), from medians after a warm-up.
 */
export interface BenchLine {
	bench: string;
	shape: string;
	value: number;
	unit: string;
	peer: string;
	peer_value: number;
	ratio: number;
	[k: string]: unknown;
}

export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const round = (x: number, decimals: number) => Math.round(x * 10 ** decimals) / 10 ** decimals;

/**
 * A line from Loupe's and the peer's medians. `lowerIsBetter` for times (ms), not for rates
 * (tokens/s); `decimals` rounds both values (the ratio keeps three).
 */
export function benchLine(
	l: { bench: string; shape: string; unit: string; value: number; peer: string; peerValue: number },
	{ lowerIsBetter = false, decimals = 2, extra = {} }: { lowerIsBetter?: boolean; decimals?: number; extra?: Record<string, unknown> } = {}
): BenchLine {
	return {
		bench: l.bench,
		shape: l.shape,
		value: round(l.value, decimals),
		unit: l.unit,
		peer: l.peer,
		peer_value: round(l.peerValue, decimals),
		ratio: round(lowerIsBetter ? l.peerValue / l.value : l.value / l.peerValue, 3),
		...extra
	};
}

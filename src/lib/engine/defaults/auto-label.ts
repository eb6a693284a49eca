/**
 * The automatic label of a feature Loupe ships: what it fires on (the tokens at its top activating
 * examples, most frequent first) and what it promotes (its top direct logit effects). Plain words a
 * class can read; marked as automatic wherever it is shown (source 'automatic').
 */

/** A token piece as a label shows it: trimmed, with spaces, newlines and empty pieces named. */
export function pieceForLabel(piece: string): string {
	const t = piece.trim();
	if (t) return t;
	if (piece.includes('\n')) return '⏎';
	return piece.length ? '␣' : '∅';
}

/** The first `n` distinct values, most frequent first (ties: first seen first). */
export function mostFrequent(values: string[], n: number): string[] {
	const counts = new Map<string, { count: number; first: number }>();
	values.forEach((v, i) => {
		const c = counts.get(v);
		if (c) c.count++;
		else counts.set(v, { count: 1, first: i });
	});
	return [...counts.entries()]
		.sort((a, b) => b[1].count - a[1].count || a[1].first - b[1].first)
		.slice(0, n)
		.map(([v]) => v);
}

/**
 * "fires on: cat, dog · promotes: ran, jumped". `topTokens`: the pieces where the feature's top
 * examples peak (empty for a feature that never fired); `topLogits`: the pieces it promotes most,
 * strongest first.
 */
export function autoLabel(topTokens: string[], topLogits: string[], n = 3): string {
	const on = mostFrequent(topTokens.map(pieceForLabel), n);
	const promotes = mostFrequent(topLogits.map(pieceForLabel), n);
	const parts = [on.length ? `fires on: ${on.join(', ')}` : 'never fired on the corpus'];
	if (promotes.length) parts.push(`promotes: ${promotes.join(', ')}`);
	return parts.join(' · ');
}

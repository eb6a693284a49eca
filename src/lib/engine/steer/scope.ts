/**
 * Where in the sequence a steering entry acts: every position, the prompt only, the generated
 * tokens only, from token N on, or a list of positions. Positions count the whole sequence, prompt
 * and generated tokens together, from 0 (BOS). `scopeRows` turns a scope into the rows of one
 * forward pass (a prefill of many rows, or one decode step) that it steers; the kernel and its
 * reference see only those rows, so they need no notion of prompt or position.
 */

export type SteerScope =
	{ kind: 'all' } | { kind: 'prompt' } | { kind: 'generated' } | { kind: 'from'; n: number } | { kind: 'positions'; positions: number[] };

/** The rows of one forward that an entry steers: rows lo ≤ t < hi, and every row in `list`. */
export interface RowWindow {
	lo: number;
	hi: number;
	list: number[];
}

/** At most this many listed positions (a URL and a kernel buffer hold them). */
export const MAX_LISTED_POSITIONS = 256;

/**
 * The rows of a forward whose first row sits at absolute position `first` (and that has `rows`
 * rows of one sequence) that `scope` steers, or null when it steers none of them.
 * `promptLength`: the prompt's tokens (its positions are 0 … promptLength − 1).
 * `skipBos`: leave position 0 alone (special tokens not steered), except where a position list
 * names it: a list says exactly where to steer.
 */
export function scopeRows(
	scope: SteerScope | undefined,
	first: number,
	rows: number,
	promptLength: number,
	skipBos: boolean
): RowWindow | null {
	const s = scope ?? { kind: 'all' };
	if (s.kind === 'positions') {
		const list = [...new Set(s.positions)].filter((p) => p >= first && p < first + rows).map((p) => p - first);
		return list.length ? { lo: 0, hi: 0, list: list.sort((a, b) => a - b) } : null;
	}
	let lo = 0;
	let hi = Infinity;
	if (s.kind === 'prompt') hi = promptLength;
	else if (s.kind === 'generated') lo = promptLength;
	else if (s.kind === 'from') lo = s.n;
	if (skipBos) lo = Math.max(lo, 1);
	const a = Math.max(lo, first) - first;
	const b = Math.min(hi, first + rows) - first;
	return a < b ? { lo: a, hi: b, list: [] } : null;
}

/** Whether row t (of one forward) is in the window. */
export function inWindow(w: RowWindow | undefined, t: number): boolean {
	return !w || (t >= w.lo && t < w.hi) || w.list.includes(t);
}

/**
 * The scope's form in a `steer=` item: `prompt`, `gen`, `from5`, `at3.7.12` or `at3-6.9` (ranges
 * inclusive); nothing for every position. `parseScope` answers null for a token that is not a scope.
 */
export function formatScope(s: SteerScope | undefined): string {
	if (!s || s.kind === 'all') return '';
	if (s.kind === 'prompt') return 'prompt';
	if (s.kind === 'generated') return 'gen';
	if (s.kind === 'from') return `from${s.n}`;
	return `at${compactPositions(s.positions)}`;
}

export function parseScope(token: string): SteerScope | null {
	if (token === 'prompt') return { kind: 'prompt' };
	if (token === 'gen') return { kind: 'generated' };
	const from = /^from(\d{1,7})$/.exec(token);
	if (from) return { kind: 'from', n: Number(from[1]) };
	const at = /^at([\d.-]+)$/.exec(token);
	if (at) {
		const positions = parsePositions(at[1], '.');
		return positions ? { kind: 'positions', positions } : null;
	}
	return null;
}

/**
 * Positions as a person writes them ("3, 7, 10-12"), or with `sep` between items (the URL's '.'):
 * sorted, without repeats; null when any item is not a position or a range a-b with a ≤ b, or
 * when there are none or more than MAX_LISTED_POSITIONS.
 */
export function parsePositions(text: string, sep: string | RegExp = /[\s,]+/): number[] | null {
	const out = new Set<number>();
	const items = text
		.trim()
		.split(sep)
		.filter((x) => x !== '');
	for (const item of items) {
		const m = /^(\d{1,7})(?:-(\d{1,7}))?$/.exec(item.trim());
		if (!m) return null;
		const a = Number(m[1]);
		const b = m[2] === undefined ? a : Number(m[2]);
		if (b < a || b - a >= MAX_LISTED_POSITIONS) return null;
		for (let p = a; p <= b; p++) out.add(p);
		if (out.size > MAX_LISTED_POSITIONS) return null;
	}
	return out.size ? [...out].sort((x, y) => x - y) : null;
}

/** Sorted positions with runs of three or more written as ranges: [3,4,5,9] → "3-5.9" (sep '.'). */
export function compactPositions(positions: number[], sep = '.'): string {
	const ps = [...new Set(positions)].sort((a, b) => a - b);
	const parts: string[] = [];
	for (let i = 0; i < ps.length;) {
		let j = i;
		while (j + 1 < ps.length && ps[j + 1] === ps[j] + 1) j++;
		if (j - i >= 2) parts.push(`${ps[i]}-${ps[j]}`);
		else for (let k = i; k <= j; k++) parts.push(String(ps[k]));
		i = j + 1;
	}
	return parts.join(sep);
}

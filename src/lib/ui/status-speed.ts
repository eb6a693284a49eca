/**
 * The status line's speed: tokens a second down to one a second, and below that the seconds each
 * token takes ("3.2 s per token"), so a slow model never reads as "0.0 tokens/s".
 */
export function statusSpeed(tokensPerSecond: number): string {
	if (!(tokensPerSecond > 0) || !Number.isFinite(tokensPerSecond)) return '—';
	if (tokensPerSecond >= 1) return `${tokensPerSecond.toFixed(1)} tokens/s`;
	const s = 1 / tokensPerSecond;
	return `${s < 100 ? s.toPrecision(2) : Math.round(s).toLocaleString('en')} s per token`;
}

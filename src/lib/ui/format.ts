export function formatBytes(n: number | null | undefined): string {
	if (n === null || n === undefined || !Number.isFinite(n)) return '?';
	if (n < 1024) return `${n} B`;
	const units = ['KB', 'MB', 'GB', 'TB'];
	let v = n / 1024;
	let i = 0;
	while (v >= 1024 && i < units.length - 1) {
		v /= 1024;
		i++;
	}
	return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

export function formatCount(n: number): string {
	if (n >= 1e9) return `${(n / 1e9).toFixed(1)}B`;
	if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
	if (n >= 1e3) return `${(n / 1e3).toFixed(0)}K`;
	return String(n);
}

/**
 * A generation speed for people: "12.3 tokens/s"; below one a second two significant digits
 * ("0.42 tokens/s"), and below 0.1 the seconds each token takes ("14 s per token"), never "0.0".
 */
export function formatRate(tokensPerSecond: number): string {
	if (!(tokensPerSecond > 0) || !Number.isFinite(tokensPerSecond)) return '—';
	if (tokensPerSecond >= 1) return `${tokensPerSecond.toFixed(1)} tokens/s`;
	if (tokensPerSecond >= 0.1) return `${tokensPerSecond.toPrecision(2)} tokens/s`;
	const s = 1 / tokensPerSecond;
	return `${s < 100 ? s.toPrecision(2) : Math.round(s)} s per token`;
}

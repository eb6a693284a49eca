/**
 * Where the graph view draws each node: prompt positions along x (one column each), the residual
 * stream's depth along y (token embeddings at the bottom, then each layer's features and error
 * nodes, the output logits on top). Nodes sharing a cell stand side by side, most influential
 * first; the logits, all at the last position, spread leftwards past their column when crowded.
 */
import type { ViewNode } from '$lib/engine/index';

export interface Placed {
	x: number;
	y: number;
	r: number;
}

export interface Layout {
	width: number;
	height: number;
	nodes: Placed[];
	/** Centre x of each prompt column and y of each row (row 0: embeddings, L + 1: logits). */
	columns: number[];
	rows: number[];
	margin: { left: number; bottom: number };
}

export function layoutGraph(nodes: ViewNode[], nPos: number, nLayers: number, width: number): Layout {
	const margin = { left: 64, right: 12, top: 46, bottom: 40 };
	const rowH = 74;
	const height = margin.top + margin.bottom + rowH * (nLayers + 1);
	const colW = (width - margin.left - margin.right) / Math.max(1, nPos);
	const columns = Array.from({ length: nPos }, (_, p) => margin.left + colW * (p + 0.5));
	const rows = Array.from({ length: nLayers + 2 }, (_, r) => height - margin.bottom - rowH * r);
	const rowOf = (n: ViewNode) => (n.kind === 'embedding' ? 0 : n.kind === 'logit' ? nLayers + 1 : n.layer + 1);
	const maxInf = Math.max(1e-12, ...nodes.map((n) => n.influence ?? 0));
	const cells = new Map<string, number[]>();
	nodes.forEach((n, i) => {
		const key = `${rowOf(n)}/${n.pos}`;
		cells.set(key, [...(cells.get(key) ?? []), i]);
	});
	const placed: Placed[] = nodes.map(() => ({ x: 0, y: 0, r: 4 }));
	for (const [key, members] of cells) {
		const [row, pos] = key.split('/').map(Number);
		members.sort((a, b) => (nodes[b].influence ?? 0) - (nodes[a].influence ?? 0) || nodes[a].index - nodes[b].index);
		const logits = row === nLayers + 1;
		// Logits may take up to the whole width, right-aligned at their column; other cells keep to theirs.
		const span = logits ? Math.min(width - margin.left - margin.right, Math.max(colW, members.length * 26)) : colW;
		const right = margin.left + colW * (pos + 1);
		const left = right - span;
		members.forEach((i, k) => {
			const n = nodes[i];
			const r = n.kind === 'embedding' || n.kind === 'logit' ? 7 : 3 + 8 * Math.sqrt((n.influence ?? 0) / maxInf);
			// Side by side across the cell; a crowded cell staggers alternate nodes up and down.
			const step = span / (members.length + 1);
			const stagger = step < 14 ? (k % 2 === 0 ? -1 : 1) * 12 : 0;
			placed[i] = { x: left + step * (k + 1), y: rows[row] + (logits || row === 0 ? 0 : stagger), r };
		});
	}
	return { width, height, nodes: placed, columns, rows, margin: { left: margin.left, bottom: margin.bottom } };
}

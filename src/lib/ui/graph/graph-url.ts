/**
 * The graph page's view in its URL, so a link reproduces it: hub, model, prompt, the pruning
 * thresholds (nt, et), pinned nodes (pin: Neuronpedia node ids, comma-separated) and supernodes
 * (sn: `name:id+id;name:id+id`), and a saved graph to open (g). Only what differs from the
 * defaults is written.
 */
import { defaultHub, defaultModelId } from '$lib/engine/model/catalogue';

export const DEFAULT_NODE_THRESHOLD = 0.8;
export const DEFAULT_EDGE_THRESHOLD = 0.98;

export interface GraphUrlState {
	hub: string;
	model: string;
	prompt: string;
	nodeThreshold: number;
	edgeThreshold: number;
	pinned: string[];
	/** [name, ...node ids] */
	supernodes: string[][];
	saved: string;
}

const fraction = (raw: string | null, fallback: number) => {
	const v = raw === null || raw.trim() === '' ? NaN : Number(raw);
	return Number.isFinite(v) ? Math.min(1, Math.max(0, v)) : fallback;
};
const ids = (raw: string) => raw.split(/[+,]/).filter((s) => /^[A-Za-z0-9_]+$/.test(s));

export function readGraphUrl(p: URLSearchParams): GraphUrlState {
	return {
		hub: p.get('hub') || defaultHub,
		model: p.get('model') || defaultModelId,
		prompt: p.get('prompt') ?? '',
		nodeThreshold: fraction(p.get('nt'), DEFAULT_NODE_THRESHOLD),
		edgeThreshold: fraction(p.get('et'), DEFAULT_EDGE_THRESHOLD),
		pinned: ids(p.get('pin') ?? ''),
		supernodes: (p.get('sn') ?? '')
			.split(';')
			.map((s) => {
				const i = s.lastIndexOf(':');
				return i > 0 ? [s.slice(0, i).trim(), ...ids(s.slice(i + 1))] : [];
			})
			.filter((s) => s.length > 1 && s[0] !== ''),
		saved: p.get('g') ?? ''
	};
}

export function writeGraphUrl(s: GraphUrlState): URLSearchParams {
	const p = new URLSearchParams();
	if (s.hub !== defaultHub) p.set('hub', s.hub);
	if (s.model !== defaultModelId) p.set('model', s.model);
	if (s.prompt) p.set('prompt', s.prompt);
	if (s.nodeThreshold !== DEFAULT_NODE_THRESHOLD) p.set('nt', String(s.nodeThreshold));
	if (s.edgeThreshold !== DEFAULT_EDGE_THRESHOLD) p.set('et', String(s.edgeThreshold));
	if (s.pinned.length) p.set('pin', s.pinned.join(','));
	if (s.supernodes.length) p.set('sn', s.supernodes.map(([name, ...m]) => `${name.replace(/[;:]/g, ' ')}:${m.join('+')}`).join(';'));
	if (s.saved) p.set('g', s.saved);
	return p;
}

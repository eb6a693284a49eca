/**
 * The graph page's interventions as people set them (ablate, scale by a factor, set to a value,
 * inject a feature at a position where it is off), turned into the activations the engine sets;
 * and the preset "suppress one feature, inject another".
 */
import type { GraphIntervention, GraphView, ViewNode } from '$lib/engine/index';

export type InterventionKind = 'ablate' | 'scale' | 'set' | 'inject';

export interface InterventionItem {
	layer: number;
	pos: number;
	feature: number;
	kind: InterventionKind;
	/** The factor (scale) or the activation (set, inject); unused for ablate. */
	amount: number;
	/** Its activation on the prompt there (0 where it is off). */
	activation: number;
}

export function toIntervention(i: InterventionItem): GraphIntervention {
	const value = i.kind === 'ablate' ? 0 : i.kind === 'scale' ? i.amount * i.activation : i.amount;
	return { layer: i.layer, pos: i.pos, feature: i.feature, value };
}

export function fromNode(n: ViewNode, kind: InterventionKind, amount: number): InterventionItem {
	return { layer: n.layer, pos: n.pos, feature: n.index, kind, amount, activation: n.activation ?? 0 };
}

export function describeIntervention(i: InterventionItem): string {
	const what = `#${i.feature} (layer ${i.layer}, position ${i.pos})`;
	if (i.kind === 'ablate') return `ablate ${what}`;
	const amount = Number(i.amount.toPrecision(4));
	if (i.kind === 'scale') return `scale ${what} ×${amount}`;
	return `${i.kind === 'inject' ? 'inject' : 'set'} ${what} to ${amount}`;
}

/** The feature node with the largest positive direct edge into a logit node, among `from`. */
function strongestInto(view: GraphView, logit: number, from: (n: ViewNode) => boolean): ViewNode | null {
	let best: ViewNode | null = null;
	let w = 0;
	for (const l of view.links)
		if (l.target === logit && l.weight > w && view.nodes[l.source].kind === 'feature' && from(view.nodes[l.source])) {
			w = l.weight;
			best = view.nodes[l.source];
		}
	return best;
}

/**
 * "Suppress one, inject another": with two pinned features, ablate the first and inject the second
 * at the first's position (at twice the larger of their activations); otherwise ablate the feature
 * that most supports the top logit and inject, at its position, the one that most supports the
 * second logit. Null when the graph has no such pair.
 */
export function suppressAndInject(view: GraphView, pinned: string[]): { items: InterventionItem[]; says: string } | null {
	const pinnedFeatures = pinned.map((id) => view.nodes.find((n) => n.id === id)).filter((n): n is ViewNode => n?.kind === 'feature');
	let off: ViewNode | null;
	let on: ViewNode | null;
	if (pinnedFeatures.length >= 2) [off, on] = pinnedFeatures;
	else {
		const logits = view.nodes
			.map((n, i) => ({ n, i }))
			.filter((x) => x.n.kind === 'logit')
			.sort((a, b) => (b.n.prob ?? 0) - (a.n.prob ?? 0));
		if (logits.length < 2) return null;
		off = strongestInto(view, logits[0].i, () => true);
		const other = (n: ViewNode) => n.id !== off!.id;
		on = null;
		// The second logit's strongest supporter, else the next logit's that has one.
		for (const l of logits.slice(1)) if (off && !on) on = strongestInto(view, l.i, other);
	}
	if (!off || !on) return null;
	const value = 2 * Math.max(off.activation ?? 0, on.activation ?? 0);
	return {
		items: [
			fromNode(off, 'ablate', 0),
			{ layer: on.layer, pos: off.pos, feature: on.index, kind: 'inject', amount: Number(value.toPrecision(3)), activation: 0 }
		],
		says: `suppress #${off.index} (layer ${off.layer}, position ${off.pos}) and inject #${on.index} of layer ${on.layer} there`
	};
}

/**
 * Feature labels from Neuronpedia explanation exports: a JSON array, an object holding one
 * (`explanations`), or JSON Lines; each row has `index` (the feature, number or string) and
 * `description`. Rows without both are skipped and counted.
 */
import { LoupeError } from '../errors';

export interface ParsedLabel {
	feature: number;
	description: string;
}

export function parseNeuronpediaExplanations(text: string, name = 'The file'): { labels: ParsedLabel[]; skipped: number } {
	let rows: unknown[];
	const trimmed = text.trim();
	try {
		if (trimmed.startsWith('[')) rows = JSON.parse(trimmed);
		else if (trimmed.startsWith('{') && !trimmed.includes('\n{')) {
			const o = JSON.parse(trimmed);
			rows = Array.isArray(o.explanations) ? o.explanations : [o];
		} else rows = trimmed.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
	} catch {
		throw new LoupeError('not-an-sae', `${name} is neither JSON nor JSON Lines.`, 'Choose a Neuronpedia explanations export (.json or .jsonl with "index" and "description" on each row).');
	}
	const labels: ParsedLabel[] = [];
	let skipped = 0;
	for (const r of rows) {
		const row = r as { index?: unknown; description?: unknown };
		const feature = Number(row?.index);
		if (Number.isInteger(feature) && feature >= 0 && typeof row?.description === 'string' && row.description.trim()) labels.push({ feature, description: row.description.trim() });
		else skipped++;
	}
	if (!labels.length) throw new LoupeError('not-an-sae', `${name} has no rows with "index" and "description".`, 'Choose a Neuronpedia explanations export for this SAE.');
	return { labels, skipped };
}

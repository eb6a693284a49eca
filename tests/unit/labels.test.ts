import { describe, expect, it } from 'vitest';
import { parseNeuronpediaExplanations } from '../../src/lib/engine/sae/labels';

describe('Neuronpedia explanation exports', () => {
	const rows = [
		{ modelId: 'gpt2-small', layer: '8-res-jb', index: '42', description: 'references to dogs', explanationModelName: 'gpt-4o-mini' },
		{ modelId: 'gpt2-small', layer: '8-res-jb', index: 7, description: ' the word "the" ' },
		{ modelId: 'gpt2-small', layer: '8-res-jb', index: 'x', description: 'broken row' }
	];
	it('reads a JSON array and JSON Lines alike, skipping rows without index and description', () => {
		for (const text of [JSON.stringify(rows), rows.map((r) => JSON.stringify(r)).join('\n'), JSON.stringify({ explanations: rows })]) {
			const { labels, skipped } = parseNeuronpediaExplanations(text);
			expect(labels).toEqual([
				{ feature: 42, description: 'references to dogs' },
				{ feature: 7, description: 'the word "the"' }
			]);
			expect(skipped).toBe(1);
		}
	});
	it('refuses a file that is not JSON', () => {
		expect(() => parseNeuronpediaExplanations('index,description\n1,dogs', 'labels.csv')).toThrow(
			/labels\.csv is neither JSON nor JSON Lines/
		);
	});
});

import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runAttribute } from '../../src/cli/attribute-run';
import { validateGraphJson } from '../../src/lib/engine/attribution/graph-schema';
import { fromNeuronpedia } from '../../src/lib/engine/attribution/neuronpedia-graph';
import { stories260KDir } from '../fixtures';

const dir = mkdtempSync(join(tmpdir(), 'loupe-attr-'));
const base = ['--model', `${stories260KDir}/stories260K.bin`, '--tokenizer', `${stories260KDir}/tok512.bin`, '--prompt', 'Lily saw a'];

describe('npm run attribute (in process)', () => {
	it('writes an unpruned, schema-valid graph whose every target adds up from the file', async () => {
		const out = join(dir, 'g.json');
		const s = await runAttribute([...base, '--out', out, '--transcoders', 'random:3:16']);
		const json = JSON.parse(readFileSync(out, 'utf8'));
		expect(validateGraphJson(json)).toEqual([]);
		expect(s.nodes).toBe(json.nodes.length);
		expect(json.metadata.prompt_tokens.length).toBe(s.tokens);
		const sum = new Map<string, number>();
		for (const l of json.links) sum.set(l.target, (sum.get(l.target) ?? 0) + l.weight);
		const targets = json.nodes.filter(
			(n: { feature_type: string }) => n.feature_type === 'cross layer transcoder' || n.feature_type === 'logit'
		);
		expect(targets.length).toBe(s.features + s.logits);
		for (const n of targets)
			expect(Math.abs((sum.get(n.node_id) ?? 0) + n.bias - n.input)).toBeLessThan(1e-4 * Math.max(1, Math.abs(n.input)));
		expect(fromNeuronpedia(json).nodes.length).toBe(s.nodes);
	});

	it('prunes when asked, and says what is wrong with bad arguments', async () => {
		const out = join(dir, 'p.json');
		const s = await runAttribute([...base, '--out', out, '--prune', '--node-threshold', '0.5']);
		const json = JSON.parse(readFileSync(out, 'utf8'));
		expect(json.metadata.pruning_settings).toEqual({ node_threshold: 0.5, edge_threshold: 0.98 });
		expect(s.nodes).toBeLessThan(s.features + s.logits + 4 * 6);
		await expect(runAttribute([...base])).rejects.toThrow(/--out is required/);
		await expect(runAttribute([...base, '--out', out, '--node-threshold', '2'])).rejects.toThrow(
			/--node-threshold takes a number in \[0, 1\]; "2" is not one/
		);
		await expect(runAttribute([...base, '--out', out, '--transcoders', 'gemma'])).rejects.toThrow(/only random:SEED/);
	});
});

import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runAttribute } from '../../src/cli/attribute-run';
import { validateGraphJson } from '../../src/lib/engine/attribution/graph-schema';
import { fromNeuronpedia } from '../../src/lib/engine/attribution/neuronpedia-graph';
import { fixturesDir, stories260KDir } from '../fixtures';

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

	it("builds the graph of an exported ONNX model from --ids: its logit nodes are PyTorch's demeaned logits", async () => {
		const dir2 = join(fixturesDir, 'torch-exports', 'llama');
		const ref = JSON.parse(readFileSync(join(dir2, 'reference.json'), 'utf8')) as {
			prompts: { input_ids: number[]; last_logits: number[] }[];
		};
		const { input_ids: ids, last_logits: logits } = ref.prompts[1];
		const out = join(dir, 'x.json');
		const s = await runAttribute([
			'--model',
			join(dir2, 'model.onnx'),
			'--ids',
			ids.join(','),
			'--out',
			out,
			'--transcoders',
			'random:3:16'
		]);
		const json = JSON.parse(readFileSync(out, 'utf8'));
		expect(validateGraphJson(json)).toEqual([]);
		expect(s.tokens).toBe(ids.length);
		const mean = logits.reduce((a, b) => a + b, 0) / logits.length;
		const logitNodes = fromNeuronpedia(json).nodes.filter((n) => n.kind === 'logit');
		expect(logitNodes.length).toBe(s.logits);
		let worst = 0;
		for (const n of logitNodes) worst = Math.max(worst, Math.abs(n.input! - (logits[n.index] - mean)));
		console.log(`llama export via the CLI: ${s.logits} logit nodes, max |input − PyTorch's demeaned logit| ${worst.toExponential(2)}`);
		expect(worst).toBeLessThan(1e-4);
		await expect(runAttribute(['--model', join(dir2, 'model.onnx'), '--prompt', 'x', '--out', out])).rejects.toThrow(
			/no tokenizer.json beside/
		);
	});
});

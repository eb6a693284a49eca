import { describe, expect, it } from 'vitest';
import { readLlama2cCheckpoint } from '../../src/lib/engine/model/llama2c/checkpoint';
import { Llama2cTokenizer, BOS } from '../../src/lib/engine/model/llama2c/tokenizer';
import { attribute } from '../../src/lib/engine/attribution/graph';
import { pruneGraph } from '../../src/lib/engine/attribution/prune';
import { fromNeuronpedia, toGraphFile, toNeuronpedia } from '../../src/lib/engine/attribution/neuronpedia-graph';
import { graphFromFile, graphView } from '../../src/lib/engine/attribution/graph-view';
import { randomTranscoders } from '../attribution-reference';
import { readArrayBuffer, stories260KDir } from '../fixtures';

const weights = readLlama2cCheckpoint(readArrayBuffer(`${stories260KDir}/stories260K.bin`), 'stories260K.bin');
const tokenizer = new Llama2cTokenizer(readArrayBuffer(`${stories260KDir}/tok512.bin`), weights.config.vocabSize);
const prompt = 'Lily saw a';
const tokens = [BOS, ...tokenizer.encode(prompt, false)];
const decode = (t: number) => tokenizer.decode([t]);

describe('the graph view and graphs read back from their files', async () => {
	const { graph } = await attribute(weights, tokens, randomTranscoders(weights.config, 5, 12));

	it('an unpruned file read back is the graph it was written from: same nodes, edges, inputs, and the same pruning', () => {
		const json = JSON.parse(JSON.stringify(toNeuronpedia(toGraphFile(graph, { slug: 's', scan: 'stories260K', prompt, decode }))));
		const back = graphFromFile(fromNeuronpedia(json))!;
		expect(back).not.toBeNull();
		expect(back.tokens).toEqual(graph.tokens);
		expect(back.features).toEqual(graph.features.map((f) => ({ ...f, preActivation: graph.input[graph.features.indexOf(f)] })));
		expect(back.logits).toEqual(graph.logits);
		expect(Array.from(back.edges)).toEqual(Array.from(graph.edges));
		expect(Array.from(back.input)).toEqual(Array.from(graph.input));
		expect(Array.from(back.bias)).toEqual(Array.from(graph.bias));
		const [a, b] = [pruneGraph(graph, 0.8, 0.98), pruneGraph(back, 0.8, 0.98)];
		expect(Array.from(b.nodeMask)).toEqual(Array.from(a.nodeMask));
		expect(Array.from(b.edgeMask)).toEqual(Array.from(a.edgeMask));
		const o = { prompt, decode, nodeThreshold: 0.8, edgeThreshold: 0.98 };
		const [va, vb] = [graphView(graph, a, o), graphView(back, b, o)];
		expect(vb.nodes.map((n) => n.id)).toEqual(va.nodes.map((n) => n.id));
		expect(vb.links).toEqual(va.links);
		// Every kept link joins kept nodes, and a view's ids are Neuronpedia's node_ids.
		for (const l of va.links) expect(va.nodes[l.source] && va.nodes[l.target]).toBeTruthy();
		expect(new Set(json.nodes.map((n: { node_id: string }) => n.node_id))).toEqual(
			new Set([...va.nodes.map((n) => n.id), ...json.nodes.map((n: { node_id: string }) => n.node_id)])
		);
		console.log(`view: ${va.nodes.length} of ${va.total.nodes} nodes, ${va.links.length} of ${va.total.edges} edges`);
	});

	it('a pruned file is drawn as it is, not taken for a whole graph', () => {
		const p = pruneGraph(graph);
		const file = toGraphFile(graph, {
			slug: 's',
			scan: 'stories260K',
			prompt,
			decode,
			prune: { ...p, nodeThreshold: 0.8, edgeThreshold: 0.98 }
		});
		expect(graphFromFile(fromNeuronpedia(JSON.parse(JSON.stringify(toNeuronpedia(file)))))).toBeNull();
	});
});

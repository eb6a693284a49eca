// The file order of a segment's nodes for onnxruntime's prepacking (onnx/prepack-order.ts): a
// MatMul weight that dwarfs the others and that node alone reads (a GPT-2 head stored as its own
// [d, V] copy) is packed first; a weight the embedding's Gather reads too (a tied head as Gemm on
// W_E) is never freed, so nothing moves; nor where no weight stands out. That the outputs stay the
// same is checked where the reordered segments run: tests/unit/torch-exports.test.ts (the torch
// GPT-2's head is such a copy) and tests/unit/weights-in-place.test.ts.
import { describe, expect, it } from 'vitest';
import { GraphIndex, type NodeProto, type TensorProto } from '../../src/lib/engine/model/onnx/graph';
import { largestPackedFirst } from '../../src/lib/engine/model/onnx/prepack-order';

const weight = (name: string, dims: number[]): TensorProto => ({ name, dataType: 1, dims });
const node = (name: string, opType: string, input: string[]): NodeProto => ({ name, opType, input, output: [`${name}_out`] });

function graph(nodes: NodeProto[], initializers: TensorProto[]) {
	return new GraphIndex({ graph: { node: nodes, initializer: initializers, input: [{ name: 'ids' }], output: [] } });
}

describe('largestPackedFirst', () => {
	const layers = [
		node('embed', 'Gather', ['wte', 'ids']),
		node('fc', 'MatMul', ['embed_out', 'w_fc']),
		node('proj', 'MatMul', ['fc_out', 'w_proj'])
	];

	it('moves an untied head weight 8× larger than every other packed weight to the front, keeping the rest in order', () => {
		const nodes = [...layers, node('head', 'MatMul', ['proj_out', 'w_head'])];
		const g = graph(nodes, [
			weight('wte', [50257, 64]),
			weight('w_fc', [64, 256]),
			weight('w_proj', [256, 64]),
			weight('w_head', [64, 50257])
		]);
		expect(largestPackedFirst(nodes, g).map((n) => n.name)).toEqual(['head', 'embed', 'fc', 'proj']);
	});

	it('leaves a tied head (Gemm on the weight the Gather reads) where it is', () => {
		const nodes = [...layers, node('head', 'Gemm', ['proj_out', 'wte'])];
		const g = graph(nodes, [weight('wte', [50257, 64]), weight('w_fc', [64, 256]), weight('w_proj', [256, 64])]);
		expect(largestPackedFirst(nodes, g)).toBe(nodes);
	});

	it('leaves the order alone where no weight stands out', () => {
		const nodes = [...layers, node('head', 'MatMul', ['proj_out', 'w_head'])];
		const g = graph(nodes, [weight('wte', [512, 64]), weight('w_fc', [64, 256]), weight('w_proj', [256, 64]), weight('w_head', [64, 512])]);
		expect(largestPackedFirst(nodes, g)).toBe(nodes);
	});
});

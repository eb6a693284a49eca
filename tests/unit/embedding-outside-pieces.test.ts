// How weight-pieces.ts sizes a head's pieces and where prepack-order.ts puts them: pure functions,
// checked against sizes written out by hand (what onnxruntime then computes from the pieces is
// checked in embedding-outside.test.ts against the unmodified graph).
import { describe, expect, it } from 'vitest';
import { GraphIndex, type NodeProto, type TensorProto } from '../../src/lib/engine/model/onnx/graph';
import { pieceSizes } from '../../src/lib/engine/model/onnx/weight-pieces';
import { largestPackedFirst } from '../../src/lib/engine/model/onnx/prepack-order';

describe('pieceSizes', () => {
	it('covers the rows in multiples of 16, each piece 32 rows smaller than the last (the remainder last)', () => {
		// 1000 rows of 1 KiB in pieces of at most 300 KiB: 288, 256, 224, 192, then the 40 left.
		expect(pieceSizes(1000, 1024, 300 * 1024)).toEqual([288, 256, 224, 192, 40]);
		// Gemma 3 270M's tied head, 262144 rows of 640 fp32, in 32 MiB pieces: 13104 rows first.
		const gemma = pieceSizes(262144, 2560, 32 << 20);
		expect(gemma[0]).toBe(13104);
		expect(gemma.reduce((a, n) => a + n, 0)).toBe(262144);
		expect(gemma.every((n, i) => i === 0 || n < gemma[i - 1])).toBe(true);
	});
});

describe('largestPackedFirst with a head in pieces', () => {
	const w = (name: string, dims: number[]): TensorProto => ({ name, dataType: 1, dims });
	const node = (name: string, opType: string, input: string[]): NodeProto => ({ name, opType, input, output: [`${name}_out`] });

	it('moves every piece of the head to the front, in order, the rest after in order', () => {
		const nodes = [
			node('fc', 'MatMul', ['x', 'w_fc']),
			node('proj', 'MatMul', ['fc_out', 'w_proj']),
			node('head0', 'MatMul', ['proj_out', 'w_head/loupe_piece/w0']),
			node('head1', 'MatMul', ['proj_out', 'w_head/loupe_piece/w1']),
			node('concat', 'Concat', ['head0_out', 'head1_out'])
		];
		// Each piece is under 8× the largest layer weight (64 × 256), the two together are over.
		const g = new GraphIndex({
			graph: {
				node: nodes,
				initializer: [
					w('w_fc', [64, 256]),
					w('w_proj', [256, 64]),
					w('w_head/loupe_piece/w0', [64, 1100]),
					w('w_head/loupe_piece/w1', [64, 1000])
				],
				input: [{ name: 'x' }],
				output: []
			}
		});
		expect(largestPackedFirst(nodes, g).map((n) => n.name)).toEqual(['head0', 'head1', 'fc', 'proj', 'concat']);
	});
});

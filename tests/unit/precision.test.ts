// Which precision variant Loupe downloads: fp32 first, fp16/q4f16 only with shader-f16, and never a
// variant the catalogue lists as known to break for that model (Gemma 3 270M's fp16 and q4f16
// overflow on onnxruntime-web's WebGPU EP, onnxruntime issue 26732), with the reason said.
import { describe, expect, it } from 'vitest';
import { choosePrecision, type HubFile } from '../../src/lib/engine/model/hf/exported-model';
import { findModel, type OnnxModel } from '../../src/lib/engine/model/catalogue';

const entry = (id: string) => findModel(id) as OnnxModel;
const tree = (...files: string[]): HubFile[] => files.map((f, i) => ({ path: `onnx/${f}`, size: 1000 * (i + 1) }));

describe('choosePrecision', () => {
	const gemma = entry('gemma-3-270m-it');
	const gpt2 = entry('gpt2-small');

	it('the catalogue marks Gemma 3 270M fp16 and q4f16 as known to break, with the reason', () => {
		expect(gemma.precisionExceptions).toEqual([{ dtypes: ['fp16', 'q4f16'], reason: expect.stringMatching(/26732/) }]);
		expect(gpt2.precisionExceptions).toBeUndefined();
	});

	it('Gemma with fp32, fp16 and q4f16 on a shader-f16 adapter: fp32, and the reason says why not fp16', () => {
		const p = choosePrecision(gemma, tree('model_fp16.onnx', 'model_q4f16.onnx', 'model.onnx', 'model.onnx_data'), true);
		expect(p).toMatchObject({ dtype: 'fp32', file: 'model.onnx', bytes: 3000 });
		expect(p.reason).toMatch(/^fp32: /);
		expect(p.reason).toMatch(/Not fp16 or q4f16: .*overflow.*invalid output.*onnxruntime issue 26732/);
	});

	it('Gemma without fp32: fp16 and q4f16 are skipped even with shader-f16, int8 is picked and the reason says why', () => {
		const p = choosePrecision(gemma, tree('model_fp16.onnx', 'model_q4f16.onnx', 'model_quantized.onnx'), true);
		expect(p).toMatchObject({ dtype: 'int8', file: 'model_quantized.onnx' });
		expect(p.reason).toMatch(/26732/);
	});

	it('Gemma with only fp16 and q4f16: refused, with the reason', () => {
		expect(() => choosePrecision(gemma, tree('model_fp16.onnx', 'model_q4f16.onnx'), true)).toThrow(
			/no ONNX export Loupe can run here.*Not fp16 or q4f16: .*26732/
		);
	});

	it('an entry with no exception still picks fp16 on a shader-f16 adapter (where there is no fp32), and fp32 where there is', () => {
		const p = choosePrecision(gpt2, tree('model_fp16.onnx', 'model_q4f16.onnx', 'model_quantized.onnx'), true);
		expect(p).toMatchObject({ dtype: 'fp16', file: 'model_fp16.onnx' });
		expect(p.reason).toBe('fp16: the adapter has shader-f16 and there is no fp32 export.');
		expect(choosePrecision(gpt2, tree('model_fp16.onnx', 'model.onnx'), true).dtype).toBe('fp32');
		// Without shader-f16 the fp16 variants are out for every model.
		expect(choosePrecision(gpt2, tree('model_fp16.onnx', 'model_quantized.onnx'), false).dtype).toBe('int8');
	});
});

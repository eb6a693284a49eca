// Where the model runs: the user's preference (Settings, ?backend=) and, on auto, the adapter's own
// word. A software adapter (isFallbackAdapter, as Chromium's SwiftShader reports) sends the model to
// wasm, except for a page that needs WebGPU (the trainer); asked-for backends are honoured with the reason.
import { describe, expect, it } from 'vitest';
import { chooseBackend, isSoftwareAdapter } from '../../src/lib/engine/model/backend';
import { readViewState, writeViewState } from '../../src/lib/ui/url-state';

const swiftShader = { name: 'SwiftShader (google)', software: true };
const realGpu = { name: 'NVIDIA (nvidia)', software: false };

describe('choosing the backend', () => {
	it('auto: wasm on a software adapter (saying why), WebGPU on a real one, wasm with none', () => {
		const soft = chooseBackend({ preference: 'auto' }, swiftShader);
		expect(soft.backend).toBe('wasm');
		expect(soft.reason).toMatch(
			/^SwiftShader \(google\) is a software adapter .*the model runs on the CPU \(wasm\) instead, .*× faster on such adapters/
		);
		expect(chooseBackend({ preference: 'auto' }, realGpu).backend).toBe('webgpu');
		expect(chooseBackend({ preference: 'webgpu' }, null).backend).toBe('wasm');
	});

	it('the trainer gets WebGPU on a software adapter; asked-for backends are honoured', () => {
		expect(chooseBackend({ preference: 'auto', needsWebGpu: true }, swiftShader)).toMatchObject({
			backend: 'webgpu',
			reason: /Training needs WebGPU/
		});
		expect(chooseBackend({ preference: 'webgpu' }, swiftShader)).toMatchObject({
			backend: 'webgpu',
			reason: /Settings ask for WebGPU.*software adapter/
		});
		expect(chooseBackend({ preference: 'wasm' }, realGpu)).toMatchObject({ backend: 'wasm', reason: /Settings ask for the CPU/ });
	});

	it("reads the adapter's word where Chromium puts it (info.isFallbackAdapter, or the older adapter property)", () => {
		expect(isSoftwareAdapter({ info: { isFallbackAdapter: true } } as unknown as GPUAdapter)).toBe(true);
		expect(isSoftwareAdapter({ info: {}, isFallbackAdapter: true } as unknown as GPUAdapter)).toBe(true);
		expect(isSoftwareAdapter({ info: { isFallbackAdapter: false } } as unknown as GPUAdapter)).toBe(false);
	});

	it('backend= lives in the URL like the other settings (auto is the default, left out)', () => {
		expect(readViewState(new URLSearchParams('backend=webgpu')).backend).toBe('webgpu');
		expect(readViewState(new URLSearchParams('backend=gpu')).backend).toBe('auto');
		expect(writeViewState(readViewState(new URLSearchParams('backend=wasm&seed=3'))).toString()).toBe('seed=3&backend=wasm');
		expect(writeViewState(readViewState(new URLSearchParams('backend=auto'))).toString()).toBe('');
	});
});

/**
 * Where the model runs in this browser and why: WebGPU (which adapter, whether it has shader-f16) or
 * wasm, chosen by the user's preference (auto | webgpu | wasm) and, on auto, by the adapter's own
 * word (a software adapter such as SwiftShader runs small models far faster on wasm); the thread
 * count.
 */
import type * as Ort from 'onnxruntime-web';
import type { Backend } from './runner';

/** Where the user asked the model to run (Settings, `?backend=`): 'auto' lets the engine choose. */
export type BackendPreference = 'auto' | 'webgpu' | 'wasm';

export const backendPreferences: BackendPreference[] = ['auto', 'webgpu', 'wasm'];

/** What the page asks of the engine before `init`: the user's preference, and whether the page needs WebGPU. */
export interface BackendRequest {
	preference: BackendPreference;
	/** The training page: its kernels and the GPU harvest need WebGPU, so 'auto' means WebGPU wherever an adapter exists. */
	needsWebGpu?: boolean;
}

export interface EngineStatus {
	backend: Backend;
	adapter: string; // e.g. "SwiftShader (google)" or "no WebGPU"
	/** Why the engine runs on wasm instead of WebGPU, in words for people. */
	fallbackReason?: string;
	crossOriginIsolated: boolean;
	threads: number;
	/** The adapter can run fp16 shaders (fp16 and q4f16 model variants need it). */
	shaderF16: boolean;
	/** What the user asked for ('auto' unless Settings or `?backend=` say otherwise). */
	preference: BackendPreference;
	/** A WebGPU adapter exists (so the user may choose WebGPU even where the engine chose wasm). */
	webgpuAvailable: boolean;
	/** The adapter says it is a software one (`isFallbackAdapter`, as Chromium's SwiftShader does). */
	softwareAdapter: boolean;
	/** Which backend runs and why, in words for the status line (set whenever a choice was made). */
	backendReason: string;
}

let request: BackendRequest = { preference: 'auto' };
let chosen: EngineStatus | null = null;

/** Sets what the next `detectBackend` honours (the Engine's `setBackendPreference`). */
export function requestBackend(r: BackendRequest) {
	request = { preference: backendPreferences.includes(r.preference) ? r.preference : 'auto', needsWebGpu: !!r.needsWebGpu };
}

/**
 * The backend the engine runs on now (the status `detectBackend` returned, including a later
 * fall-back to wasm the session writes into it): model builders pick their graph by it.
 */
export function chosenBackend(): Backend {
	return chosen?.backend ?? 'wasm';
}

/**
 * How much faster models write on wasm than on a software WebGPU adapter, measured on SwiftShader:
 * stories260K 226 vs 32.9 tokens/s on the fused graph (README, generate_greedy and the fused bench),
 * GPT-2-sized exports 70–110× (DESIGN.md). Said on the status line when the adapter's word sends the model to wasm.
 */
const SOFTWARE_ADAPTER_SLOWDOWN = '7–100×';

/** Asks the browser once, and sets onnxruntime-web's wasm threads and log level to match. */
export async function detectBackend(ort: typeof Ort, req: BackendRequest = request): Promise<EngineStatus> {
	const threads = self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
	ort.env.wasm.numThreads = threads;
	ort.env.logLevel = 'error';
	let adapter = 'no WebGPU';
	let fallbackReason: string | undefined;
	let shaderF16 = false;
	let found: GPUAdapter | null = null;
	if (!('gpu' in navigator) || !navigator.gpu) {
		fallbackReason =
			'This browser has no WebGPU (navigator.gpu is missing), so the model runs on the CPU (WebAssembly), more slowly. Chrome, Edge and recent Safari and Firefox have WebGPU.';
	} else {
		found = await navigator.gpu.requestAdapter().catch(() => null);
		if (!found)
			fallbackReason =
				'WebGPU is present but no GPU adapter is available (it may be disabled or blocklisted), so the model runs on the CPU (WebAssembly), more slowly.';
		else {
			shaderF16 = found.features.has('shader-f16');
			const i = found.info;
			adapter = [i.description || i.architecture || i.device, i.vendor && `(${i.vendor})`].filter(Boolean).join(' ') || 'WebGPU adapter';
		}
	}
	const choice = chooseBackend(req, found ? { name: adapter, software: isSoftwareAdapter(found) } : null);
	if (choice.backend === 'wasm' && !found && req.preference === 'webgpu')
		fallbackReason = `Settings ask for WebGPU, but ${fallbackReason!.charAt(0).toLowerCase()}${fallbackReason!.slice(1)}`;
	chosen = {
		backend: choice.backend,
		adapter,
		fallbackReason,
		crossOriginIsolated: self.crossOriginIsolated,
		threads,
		shaderF16,
		preference: req.preference,
		webgpuAvailable: !!found,
		softwareAdapter: !!found && isSoftwareAdapter(found),
		backendReason: choice.reason ?? fallbackReason ?? ''
	};
	return chosen;
}

/** The adapter's own word: `info.isFallbackAdapter` (Chromium ≥ 136), or the older `isFallbackAdapter` on the adapter. */
export function isSoftwareAdapter(a: GPUAdapter): boolean {
	const info = a.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
	return !!(info?.isFallbackAdapter ?? (a as GPUAdapter & { isFallbackAdapter?: boolean }).isFallbackAdapter);
}

/**
 * The choice itself, from the request and the adapter (null: none), with the reason in words.
 * No adapter: wasm (the caller says why). 'webgpu' / 'wasm': as asked. 'auto': WebGPU, except on a
 * software adapter, where small models run several times faster on Loupe's wasm path (pages that
 * need WebGPU, the trainer, still get it there).
 */
export function chooseBackend(
	req: BackendRequest,
	adapter: { name: string; software: boolean } | null
): { backend: Backend; reason?: string } {
	if (!adapter) return { backend: 'wasm' };
	if (req.preference === 'wasm')
		return {
			backend: 'wasm',
			reason: `Settings ask for the CPU (wasm), so the model runs there although WebGPU (${adapter.name}) is available.`
		};
	if (req.preference === 'webgpu')
		return {
			backend: 'webgpu',
			reason: adapter.software
				? `Settings ask for WebGPU: the model runs on ${adapter.name}, a software adapter (the CPU emulating a GPU), so more slowly than on wasm.`
				: `Settings ask for WebGPU: the model runs on ${adapter.name}.`
		};
	if (adapter.software && req.needsWebGpu)
		return {
			backend: 'webgpu',
			reason: `Training needs WebGPU, so the model runs on ${adapter.name}, a software adapter (the CPU emulating a GPU): expect it to be slow.`
		};
	if (adapter.software)
		return {
			backend: 'wasm',
			reason: `${adapter.name} is a software adapter (the CPU emulating a GPU): the model runs on the CPU (wasm) instead, which is typically ${SOFTWARE_ADAPTER_SLOWDOWN} faster on such adapters. Settings can ask for WebGPU.`
		};
	return { backend: 'webgpu', reason: `The model runs on the GPU (WebGPU, ${adapter.name}).` };
}

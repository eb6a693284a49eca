/**
 * The view in the URL, so a link reproduces it (teachers share links). Plain parameter names:
 * hub, model, prompt, temperature, top_p, top_k, max_tokens, seed, freq_penalty, sae (owner/repo/folder
 * on the hub), feature, steer, chat (1: the chat template), classroom (1: large type for a projector),
 * backend (auto | webgpu | wasm: where the model runs; auto lets the engine choose).
 */
import { defaultHub, defaultModelId } from '$lib/engine/model/catalogue';
import { defaultSaeFor } from '$lib/engine/sae/catalogue';
import { defaultSampling, type SamplingSettings } from '$lib/engine/sample/sampler';
import type { BackendPreference } from '$lib/engine/model/backend';

export interface ViewState {
	hub: string;
	model: string;
	prompt: string;
	sampling: SamplingSettings;
	sae: string;
	feature: number | null;
	steer: string; // see $lib/engine/steer/url.ts
	chat: boolean;
	classroom: boolean;
	backend: BackendPreference;
}

const numberParams: [keyof SamplingSettings, string, number, number][] = [
	// key, URL name, min, max
	['temperature', 'temperature', 0, 5],
	['topP', 'top_p', 0, 1],
	['topK', 'top_k', 0, 100_000],
	['maxTokens', 'max_tokens', 1, 100_000],
	['seed', 'seed', 0, 2 ** 32 - 1],
	['freqPenalty', 'freq_penalty', -2, 2]
];

export function readViewState(params: URLSearchParams): ViewState {
	const sampling = { ...defaultSampling };
	for (const [key, name, min, max] of numberParams) {
		const raw = params.get(name);
		const v = raw === null || raw.trim() === '' ? NaN : Number(raw);
		if (Number.isFinite(v)) sampling[key] = Math.min(max, Math.max(min, v));
	}
	return {
		hub: params.get('hub') || defaultHub,
		model: params.get('model') || defaultModelId,
		prompt: params.get('prompt') ?? '',
		sampling,
		// No `sae` parameter: the default model's bundled SAE; `sae=` (empty): none.
		sae: params.get('sae') ?? defaultSaeFor(params.get('model') || defaultModelId),
		feature: /^\d+$/.test(params.get('feature') ?? '') ? Number(params.get('feature')) : null,
		steer: params.get('steer') ?? '',
		chat: params.get('chat') === '1',
		classroom: params.get('classroom') === '1',
		backend: readBackend(params.get('backend'))
	};
}

/** Only what differs from the defaults goes into the URL, so links stay short. */
export function writeViewState(s: ViewState): URLSearchParams {
	const p = new URLSearchParams();
	if (s.hub !== defaultHub) p.set('hub', s.hub);
	if (s.model !== defaultModelId) p.set('model', s.model);
	if (s.prompt) p.set('prompt', s.prompt);
	for (const [key, name] of numberParams) if (s.sampling[key] !== defaultSampling[key]) p.set(name, String(s.sampling[key]));
	if (s.sae !== defaultSaeFor(s.model)) p.set('sae', s.sae);
	if (s.feature !== null) p.set('feature', String(s.feature));
	if (s.steer) p.set('steer', s.steer);
	if (s.chat) p.set('chat', '1');
	if (s.classroom) p.set('classroom', '1');
	if (s.backend && s.backend !== 'auto') p.set('backend', s.backend);
	return p;
}

/** `backend=webgpu|wasm` as asked; anything else is 'auto'. */
export function readBackend(raw: string | null): BackendPreference {
	return raw === 'webgpu' || raw === 'wasm' ? raw : 'auto';
}

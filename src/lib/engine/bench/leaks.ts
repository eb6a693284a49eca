/**
 * The no-leaks bench (issue 16): does switching models, SAEs and hooks, and a long steered
 * session, leave GPU memory and the worker's heap where they were? It drives the engine's own
 * capability modules (the session's model loading, the bundled SAEs' attach path, the explorer's
 * analysis, steering's side by side) as the page does, and samples, at the same engine state each
 * time (stories260K from the app's copy, its bundled SAE at blocks.2.hook_resid_pre):
 *   - GPU buffers live (created − destroyed, gpu-buffer-count.ts) and their bytes;
 *   - the worker's heap, measured by the page (heap-probe.ts), where the page can measure it.
 * Phase 1, the first load; phase 2, `switches` times: the second model (the hub's GPT-2 stand-in),
 * then stories260K with the SAE at the next hook, then back to the first state; phase 3, `tokens`
 * steered tokens side by side with the setup changed every `steerEvery` tokens (SAE features
 * added and clamped, contrast vectors at two other hooks). Growth is measured from the first
 * switch (and from the first 100 steered tokens), so one-off caches (pipelines, ORT's pool) that
 * the first round fills do not read as leaks; growth from the first load is printed too.
 */
import { LoupeError } from '../errors';
import type { ModelSession } from '../model/session';
import { defaultHub } from '../model/catalogue';
import { loadCatalogueModel, loadSaeByRelease } from '../defaults/bundled';
import { BUNDLED_RELEASE, SHIPPED_SAE_HOOKS } from '../sae/catalogue';
import { SaeExplorer } from '../sae/explorer';
import { Steering } from '../steer/steering';
import type { SteerFeature, SteeringSetup } from '../steer/spec';
import { saveVector } from '../store/db';
import { defaultSampling } from '../sample/sampler';
import { GpuBufferCounter, type BufferCounts } from './gpu-buffer-count';
import { heapSample, type HeapSample } from './heap-probe';
import type { BenchLine } from './bench-line';

export interface LeaksPlan {
	/** Rounds of model, SAE and hook switching (the issue asks for 20). */
	switches: number;
	/** Steered tokens in the long session (the issue asks for 1,000). */
	tokens: number;
	steerEvery: number;
	/** A hub (or mirror) with the catalogue's second model; '' or the default hub: stories260K is reloaded instead. */
	hub: string;
}

interface Sample {
	gpu: BufferCounts;
	heap: HeapSample;
}

const noop = () => {};
const HOME_HOOK = 'blocks.2.hook_resid_pre';
const SECOND_MODEL = 'gpt2-small';
const PROMPT = 'Once upon a time, there was a little girl named Lily.';
/** Words of the mirrored stand-in's word-level vocabulary (tests/export-fixture.mjs); the real GPT-2 reads them too. */
const SECOND_PROMPT = 'bab dab fab';

export async function benchLeaks(session: ModelSession, plan: LeaksPlan): Promise<BenchLine[]> {
	const counter = new GpuBufferCounter();
	counter.install();
	try {
		return await run(session, counter, plan);
	} finally {
		counter.uninstall();
	}
}

async function run(session: ModelSession, counter: GpuBufferCounter, plan: LeaksPlan): Promise<BenchLine[]> {
	const explorer = new SaeExplorer(session);
	const steering = new Steering(session);
	const second = plan.hub && plan.hub.replace(/\/+$/, '') !== defaultHub ? SECOND_MODEL : 'stories260K';
	const sample = async (): Promise<Sample> => {
		const heap = await heapSample(); // first: measuring collects garbage, so the GPU count after it sees what the collector freed
		return { heap, gpu: counter.snapshot() };
	};
	const load = async (model: string) => {
		// stories260K from the app's own copy, as the default page opens it; the second model from the hub.
		const info = await loadCatalogueModel(session, { model, hub: model === 'stories260K' ? defaultHub : plan.hub }, noop);
		if (info.backend !== 'webgpu')
			throw new LoupeError(
				'no-webgpu',
				`${info.name} opened on ${info.backend}: the no-leaks bench counts GPU buffers.`,
				'Run it where WebGPU is available.'
			);
	};
	const attach = (hook: string) => loadSaeByRelease(explorer, session, { hub: defaultHub, release: BUNDLED_RELEASE, saeId: hook }, noop);
	const write = (seed: number, prompt = PROMPT) => session.generate(prompt, { ...defaultSampling, maxTokens: 8, seed }, noop);
	/** The state every sample is taken in: stories260K freshly opened, its default SAE attached, used once. */
	const home = async (seed: number) => {
		await load('stories260K');
		await attach(HOME_HOOK);
		await explorer.analyze(PROMPT);
		await write(seed);
	};

	const t0 = performance.now();
	await home(0);
	const first = await sample();
	let afterFirst = first;
	for (let i = 1; i <= plan.switches; i++) {
		await load(second);
		await write(i, second === 'stories260K' ? PROMPT : SECOND_PROMPT);
		await load('stories260K');
		await attach(SHIPPED_SAE_HOOKS[i % SHIPPED_SAE_HOOKS.length]);
		await explorer.analyze(PROMPT);
		await home(i);
		if (i === 1) afterFirst = await sample();
	}
	const afterSwitches = await sample();
	const switchMs = performance.now() - t0;

	// Phase 3: the long steered session, in the home state.
	const t1 = performance.now();
	const { steered, calls, afterWarm, afterAll } = await steeredSession(session, steering, plan, sample);
	const sessionMs = performance.now() - t1;

	const shape = `${plan.switches} × (${second} → stories260K with its SAE at the next of ${SHIPPED_SAE_HOOKS.length} hooks → stories260K + ${HOME_HOOK})`;
	return [
		line('switches', shape, afterFirst, afterSwitches, first, { seconds: round(switchMs / 1000, 1), second_model: second }),
		line(
			'steered_session',
			`${steered} steered tokens side by side in ${calls} runs, setup changed every ${plan.steerEvery}`,
			afterWarm,
			afterAll,
			first,
			{
				seconds: round(sessionMs / 1000, 1),
				tokens_per_second: round(steered / (sessionMs / 1000), 2)
			}
		)
	];
}

/** Setups to cycle through: SAE features added and clamped, the two vectors alone and with features, nothing. */
function setups(vectors: string[]): SteeringSetup[] {
	const f = (feature: number, mode: 'add' | 'clamp', value: number, normalize = false): SteerFeature => ({
		feature,
		mode,
		value,
		normalize
	});
	const v = (id: string, value: number): SteerFeature => ({ feature: -1, vector: id, mode: 'add', value, normalize: true });
	const list: SteerFeature[][] = [];
	for (let j = 0; j < 12; j++) {
		const a = (37 * j + 11) % 512;
		const b = (101 * j + 5) % 512;
		list.push(
			[f(a, 'add', 2 + (j % 5), true)],
			[f(a, 'add', 4), f(b, 'clamp', 0)],
			[v(vectors[j % 2], 1 + (j % 3))],
			[v(vectors[0], 2), v(vectors[1], -1), f(b, 'add', 3, true)],
			[]
		);
	}
	return list.map((features) => ({ features, steerSpecial: false }));
}

async function steeredSession(session: ModelSession, steering: Steering, plan: LeaksPlan, sample: () => Promise<Sample>) {
	const m = session.requireModel();
	const d = m.source.shape.dModel;
	// Two contrast-style vectors at hooks of their own (so the model is cut there too), seeded.
	const ids = ['leaks1', 'leaks3'];
	await Promise.all(
		ids.map((id, k) =>
			saveVector({
				id,
				name: `no-leaks bench ${k}`,
				model: m.info.id,
				hook: `blocks.${k === 0 ? 1 : 3}.hook_resid_pre`,
				values: Float32Array.from({ length: d }, (_, i) => Math.sin(0.37 * i + k)),
				positive: ['a'],
				negative: ['b'],
				createdAt: new Date(0).toISOString()
			})
		)
	);
	const list = setups(ids);
	// Each run starts with every hook of the session in use, so the cuts are made in the first run
	// and stay: what the samples compare is the same cut model.
	const start: SteeringSetup = list[3];
	let steered = 0;
	let changes = 0;
	let calls = 0;
	let afterWarm: Sample | null = null;
	const perRun = Math.min(100, plan.tokens);
	while (steered < plan.tokens && calls < 4 * Math.ceil(plan.tokens / perRun)) {
		calls++;
		await steering.set(start);
		const before = steered;
		await steering.sideBySide(PROMPT, { ...defaultSampling, maxTokens: Math.min(perRun, plan.tokens - steered), seed: calls }, (stream) => {
			if (stream !== 'steered') return;
			steered++;
			// Live, as a slider acts: from the next token on.
			if (steered % plan.steerEvery === 0) void steering.set(list[changes++ % list.length]);
		});
		if (steered === before) break; // the model stopped at once: nothing more to learn
		if (!afterWarm) afterWarm = await sample();
	}
	const afterAll = await sample();
	return { steered, calls, afterWarm: afterWarm ?? afterAll, afterAll };
}

const round = (x: number, d: number) => Math.round(x * 10 ** d) / 10 ** d;

/** One line: live GPU buffers at the end against the reference sample (ratio 1: no growth), with the heap beside it. */
function line(phase: string, shape: string, ref: Sample, end: Sample, first: Sample, extra: Record<string, unknown>): BenchLine {
	const heap = (s: Sample) => s.heap.workerBytes;
	const grow = (a: number | null, b: number | null) => (a === null || b === null ? null : b - a);
	return {
		bench: 'no_leaks',
		phase,
		shape,
		value: end.gpu.live,
		unit: 'live GPU buffers',
		peer: phase === 'switches' ? 'after the first switch' : 'after the first run (warm)',
		peer_value: ref.gpu.live,
		ratio: end.gpu.live ? round(ref.gpu.live / end.gpu.live, 3) : 1,
		gpu_buffers: {
			after_first_load: first.gpu.live,
			reference: ref.gpu.live,
			end: end.gpu.live,
			growth: end.gpu.live - ref.gpu.live,
			growth_from_first_load: end.gpu.live - first.gpu.live
		},
		gpu_bytes: {
			after_first_load: first.gpu.liveBytes,
			reference: ref.gpu.liveBytes,
			end: end.gpu.liveBytes,
			growth: end.gpu.liveBytes - ref.gpu.liveBytes
		},
		gpu_counts_end: {
			created: end.gpu.created,
			destroyed: end.gpu.destroyed,
			freed_with_device: end.gpu.freedWithDevice,
			collected: end.gpu.collected
		},
		live_by_label_end: end.gpu.liveByLabel,
		worker_heap_bytes: {
			after_first_load: heap(first),
			reference: heap(ref),
			end: heap(end),
			growth: grow(heap(ref), heap(end)),
			growth_from_first_load: grow(heap(first), heap(end))
		},
		heap_source: end.heap.source,
		heap_measure_ms: [first, ref, end].map((s) => s.heap.ms ?? null),
		...(end.heap.pageUsedJsHeap !== undefined ? { page_used_js_heap: end.heap.pageUsedJsHeap } : {}),
		...extra
	};
}

/**
 * The worker's heap for the no-leaks bench, measured from its page: a dedicated worker cannot
 * measure itself (`performance.measureUserAgentSpecificMemory` is exposed to windows, shared and
 * service workers only, and needs cross-origin isolation), but its page's measurement breaks the
 * bytes down by realm, the engine's worker among them. So the bench (in the worker) asks its page
 * over a BroadcastChannel and waits for the answer; the /bench page answers (`answerHeapProbes`).
 * The measurement runs at a garbage collection, so it counts what is still reachable; Chromium waits
 * for one in every realm (up to a minute), so where `gc` is exposed (`--js-flags=--expose-gc`, as
 * `npm run bench` launches it) page and worker collect at once while the measurement waits.
 * Where the page is not cross-origin isolated, the answer says so and carries the page's own
 * `performance.memory` (Chromium's main-thread heap, not the worker's) for what it is worth.
 */

const CHANNEL = 'loupe-bench-heap';

/** Collects garbage now where the browser exposes `gc` (a bench flag; never in a user's browser). */
const collect = () => (globalThis as { gc?: () => void }).gc?.();

export interface HeapSample {
	/** Bytes attributed to the engine's worker (DedicatedWorkerGlobalScope), or null where not measurable. */
	workerBytes: number | null;
	/** Everything the measurement saw (page, worker, other realms). */
	totalBytes: number | null;
	/** What measured, or why nothing could. */
	source: string;
	/** Chromium's `performance.memory.usedJSHeapSize` of the page's main thread (not the worker), where present. */
	pageUsedJsHeap?: number;
	/** How long the measurement took (it waits for a collection in every realm it measures). */
	ms?: number;
}

interface MemoryMeasurement {
	bytes: number;
	breakdown: { bytes: number; attribution: { url?: string; scope?: string }[]; types: string[] }[];
}

/** In the page: answers the bench's requests until the returned function is called. */
export function answerHeapProbes(): () => void {
	const ch = new BroadcastChannel(CHANNEL);
	ch.onmessage = async (e: MessageEvent<{ ask: number }>) => {
		if (typeof e.data?.ask !== 'number') return;
		ch.postMessage({ answer: e.data.ask, sample: await measureHere() });
	};
	return () => ch.close();
}

async function measureHere(): Promise<HeapSample> {
	const perf = performance as Performance & {
		measureUserAgentSpecificMemory?: () => Promise<MemoryMeasurement>;
		memory?: { usedJSHeapSize: number };
	};
	const pageUsedJsHeap = perf.memory?.usedJSHeapSize;
	if (!perf.measureUserAgentSpecificMemory || !self.crossOriginIsolated)
		return {
			workerBytes: null,
			totalBytes: null,
			source: !self.crossOriginIsolated
				? 'unavailable: the page is not cross-origin isolated (COOP same-origin + COEP require-corp), which measureUserAgentSpecificMemory needs'
				: 'unavailable: this browser has no performance.measureUserAgentSpecificMemory',
			pageUsedJsHeap
		};
	try {
		const t0 = performance.now();
		const measuring = perf.measureUserAgentSpecificMemory();
		collect();
		const m = await measuring;
		const ms = Math.round(performance.now() - t0);
		const worker = m.breakdown.filter((b) => b.attribution.some((a) => a.scope === 'DedicatedWorkerGlobalScope'));
		return {
			workerBytes: worker.reduce((s, b) => s + b.bytes, 0),
			totalBytes: m.bytes,
			source: 'performance.measureUserAgentSpecificMemory (the DedicatedWorkerGlobalScope entries)',
			pageUsedJsHeap,
			ms
		};
	} catch (e) {
		return { workerBytes: null, totalBytes: null, source: `measureUserAgentSpecificMemory failed: ${String(e)}`, pageUsedJsHeap };
	}
}

let asked = 0;

/**
 * In the worker: the page's measurement of this worker's heap, or a sample saying why there is
 * none (no page answered within `timeoutMs`: the bench runs outside the /bench page).
 */
export function heapSample(timeoutMs = 300_000): Promise<HeapSample> {
	const id = ++asked;
	const ch = new BroadcastChannel(CHANNEL);
	const nudge = setInterval(collect, 250); // the measurement waits for this realm's next collection
	return new Promise<HeapSample>((done) => {
		const timer = setTimeout(
			() => done({ workerBytes: null, totalBytes: null, source: 'unavailable: no page answered the heap probe' }),
			timeoutMs
		);
		ch.onmessage = (e: MessageEvent<{ answer?: number; sample?: HeapSample }>) => {
			if (e.data?.answer !== id || !e.data.sample) return;
			clearTimeout(timer);
			done(e.data.sample);
		};
		ch.postMessage({ ask: id });
	}).finally(() => (clearInterval(nudge), ch.close()));
}

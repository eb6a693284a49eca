// The engine's model session in Node (wasm EP), on stories260K. Re-cutting the loaded model (an
// SAE or a steering vector needs a new hook) releases the old runner before the new one is built
// (ORT never holds two copies of the weights); when the new cut cannot be built the model keeps
// running at its old cut, still writing llama2.c's own greedy text, with a message that says so.
// Loading another model releases the loaded one's sessions first too (onnxruntime-web frees a
// released WebGPU session's buffers only when no other session lives), and a load that fails then
// reopens the model that was loaded, still writing llama2.c's greedy text.
// A model without an LM head refuses to write, in words.
import './engine-in-node';
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import * as ort from 'onnxruntime-web/webgpu';
import { ModelSession } from '../../src/lib/engine/model/session';
import { hookBoundary } from '../../src/lib/engine/model/hooks';
import { defaultSampling } from '../../src/lib/engine/sample/sampler';
import { publishedGreedy256, stories260KDir } from '../fixtures';

// The session reads the worker's globals: give Node a `self` and a navigator without WebGPU.

const file = (name: string) => new File([readFileSync(resolve(stories260KDir, name))], name);
const greedy = { ...defaultSampling, temperature: 0, maxTokens: 40, seed: 1 };

async function openStories260K() {
	const session = new ModelSession();
	const info = await session.loadFromFiles([file('stories260K.bin'), file('tok512.bin')]);
	expect(info.backend).toBe('wasm');
	return session;
}

describe('re-cutting the loaded model', () => {
	it('releases the old sessions before creating the new ones', async () => {
		const session = await openStories260K();
		const m = session.requireModel();
		const hooks = ['blocks.1.hook_resid_pre', 'blocks.3.hook_resid_pre'];
		const events: string[] = [];
		const create = ort.InferenceSession.create;
		const old = m.runner;
		const dispose = old.dispose.bind(old);
		old.dispose = async () => {
			events.push('dispose old');
			await dispose();
		};
		(ort.InferenceSession as { create: unknown }).create = (...args: Parameters<typeof create>) => {
			events.push('create');
			return create.apply(ort.InferenceSession, args);
		};
		try {
			await session.locked(() =>
				session.ensureCuts(
					m,
					hooks.map((h) => hookBoundary(h, m.source.shape.nLayers))
				)
			);
		} finally {
			(ort.InferenceSession as { create: unknown }).create = create;
		}
		expect(events[0]).toBe('dispose old');
		expect(events.filter((e) => e === 'create').length).toBe(3); // three segments
		expect(m.info.cutAt).toEqual(hooks);
		const r = await session.generate('', greedy, () => {});
		expect(r.text.length).toBeGreaterThan(40);
		expect(publishedGreedy256().startsWith(r.text)).toBe(true);
	});

	it('keeps the model at its old cut, still generating, when the new cut cannot be built', async () => {
		const session = await openStories260K();
		const m = session.requireModel();
		const segment = m.source.segment;
		// A cut whose segments onnxruntime refuses (as when a second copy of the weights does not fit).
		m.source.segment = (cuts) => ({
			...segment(cuts),
			segments: segment(cuts).segments.map((s) => ({ ...s, bytes: new Uint8Array([1, 2, 3]) }))
		});
		await expect(
			session.locked(() => session.ensureCuts(m, [hookBoundary('blocks.2.hook_resid_pre', m.source.shape.nLayers)]))
		).rejects.toThrow(/could not be cut at blocks\.2\.hook_resid_pre .*it still runs as before/);
		m.source.segment = segment;
		expect(session.current).toBe(m);
		expect(m.info.cutAt).toEqual([]);
		const r = await session.generate('', greedy, () => {});
		expect(r.text.length).toBeGreaterThan(40);
		expect(publishedGreedy256().startsWith(r.text)).toBe(true);
	});
});

describe('switching models', () => {
	it("releases the old model's sessions before the new one's, and a load that fails reopens the old model", async () => {
		const session = await openStories260K();
		const first = session.requireModel();
		const events: string[] = [];
		const watchDispose = (runner: typeof first.runner) => {
			const dispose = runner.dispose.bind(runner);
			runner.dispose = async () => {
				events.push('dispose old');
				await dispose();
			};
		};
		watchDispose(first.runner);
		const create = ort.InferenceSession.create;
		let refuse = true;
		(ort.InferenceSession as { create: unknown }).create = (...args: Parameters<typeof create>) => {
			events.push('create');
			if (refuse) {
				refuse = false; // only the new model's first session (as when its weights do not fit)
				return Promise.reject(new Error('no room for the weights'));
			}
			return create.apply(ort.InferenceSession, args);
		};
		try {
			await expect(session.loadFromFiles([file('stories260K.bin'), file('tok512.bin')])).rejects.toThrow('no room for the weights');
			expect(events).toEqual(['dispose old', 'create', 'create']); // the refused one, then the old model reopened
			expect(session.current).toBe(first);
			const r = await session.generate('', greedy, () => {});
			expect(publishedGreedy256().startsWith(r.text) && r.text.length > 40).toBe(true);

			events.length = 0;
			watchDispose(first.runner); // the reopened model's runner
			await session.loadFromFiles([file('stories260K.bin'), file('tok512.bin')]);
			expect(events).toEqual(['dispose old', 'create']);
			expect(session.current).not.toBe(first);
			expect((await session.generate('', greedy, () => {})).text).toBe(r.text);
		} finally {
			(ort.InferenceSession as { create: unknown }).create = create;
		}
	});
});

describe('a model without an LM head', () => {
	it('refuses to write text in plain words, and still runs the residual stream', async () => {
		const session = await openStories260K();
		const m = session.requireModel();
		m.source.lmHead = false; // what surgery reports for an export whose last output is a hidden state
		await expect(session.generate('Once', greedy, () => {})).rejects.toThrow(
			'This export has no LM head: it cannot write text; hooks, SAEs and corpus runs work.'
		);
		m.runner.reset();
		const { logits, rows } = await m.runner.forward(m.tokenizer.encode('Once upon'));
		expect(rows).toBe(m.tokenizer.encode('Once upon').length);
		logits.dispose();
	});
});

// The catalogue flow for an exported ONNX model: choose GPT-2 → the app asks the (mirrored) Hub
// which variants exist, downloads the graph with progress, puts hook points in by graph surgery,
// and writes. The stand-in repo is the real ORT-fused tiny GPT-2 export (tests/export-fixture.mjs).
// Expected text: the unmodified graph run greedily by onnxruntime in Node, decoded by hand.
import { expect, test, shot } from './app';
import { readFileSync } from 'node:fs';
import * as ort from 'onnxruntime-web';
import { CHAT_REPO, EOS, chatVocabulary, fusedGpt2, llamaExportFiles, vocabulary, writeExportRepo } from '../export-fixture.mjs';
import { generateText, openApp, waitForModel } from './app';

const PROMPT = 'bad ked mif';
const STEPS = 12;

/** Greedy decoding of the unmodified graph, with its own input names and KV layout. */
async function referenceCompletion(promptWords = PROMPT.split(' '), words = vocabulary()): Promise<string> {
	ort.env.wasm.numThreads = 1;
	const s = await ort.InferenceSession.create(new Uint8Array(readFileSync(fusedGpt2)), { executionProviders: ['wasm'] });
	let ids = [EOS, ...promptWords.map((w) => words.indexOf(w))];
	const past: Record<string, ort.Tensor> = {};
	for (let l = 0; l < 5; l++) past[`past_${l}`] = new ort.Tensor('float32', new Float32Array(0), [2, 1, 4, 0, 8]);
	let position = 0;
	const out: number[] = [];
	for (let step = 0; step < STEPS; step++) {
		const S = ids.length;
		const r = await s.run({
			input_ids: new ort.Tensor('int32', Int32Array.from(ids), [1, S]),
			position_ids: new ort.Tensor(
				'int32',
				Int32Array.from(ids, (_, i) => position + i),
				[1, S]
			),
			attention_mask: new ort.Tensor('int32', new Int32Array(position + S).fill(1), [1, position + S]),
			...past
		});
		for (let l = 0; l < 5; l++) past[`past_${l}`] = r[`present_${l}`];
		const logits = (r.logits.data as Float32Array).subarray((S - 1) * 1000, S * 1000);
		const next = logits.reduce((best, v, i) => (v > logits[best] ? i : best), 0);
		if (next === EOS || words[next] === '<end_of_turn>') break;
		out.push(next);
		position += S;
		ids = [next];
	}
	return out.map((i) => words[i]).join(' ');
}

test('GPT-2 from the catalogue: tree API, download with progress, surgery, greedy text equals the unmodified graph', async ({ page }) => {
	writeExportRepo();
	const expected = await referenceCompletion();
	expect(expected.split(' ').length).toBeGreaterThan(3);
	await openApp(page, { model: 'gpt2-small', prompt: PROMPT, temperature: 0, max_tokens: STEPS });
	await expect(page.getByTestId('download-progress')).toBeVisible();
	await waitForModel(page);
	const status = page.getByTestId('status-line');
	await expect(status).toContainText('GPT-2 small');
	await expect(status).toContainText('5 layers, d_model 32, fp32');
	const text = await generateText(page);
	expect(text.trim()).toBe(expected);
	// The hook points surgery found, shown for people.
	await page.getByText('Hook points').click();
	const hooks = page.getByTestId('hook-manifest');
	await expect(hooks).toContainText('blocks.4.hook_resid_post');
	await expect(hooks).toContainText('SkipLayerNormalization output 3');
	await shot(page, 'tests/screenshots/exported-gpt2.png', true);
});

test('an .onnx with its external-data weights opens from disk; without the weights file the message names it', async ({ page }) => {
	const f = llamaExportFiles();
	await openApp(page, { prompt: 't5 t77', temperature: 0, max_tokens: 6, backend: 'webgpu' }); // the shader-f16 check is WebGPU's
	await waitForModel(page);
	await page.getByTestId('model-files').setInputFiles([f.graph, f.tokenizer, f.tokenizerConfig, f.config]);
	await expect(page.getByText(/keeps its weights in "model\.onnx\.data", which was not chosen with it/)).toBeVisible();
	await expect(page.getByTestId('generate')).toBeEnabled(); // the model that was loaded still works
	await page.getByTestId('model-files').setInputFiles([f.graph, f.weights, f.tokenizer, f.tokenizerConfig, f.config]);
	const status = page.getByTestId('status-line');
	await expect(status).toContainText('model.onnx', { timeout: 120_000 });
	await expect(status).toContainText('2 layers, d_model 16, float16');
	// SwiftShader has no shader-f16: the fp16 model runs on the CPU, and the page says why.
	await expect(status).toHaveAttribute('data-backend', 'wasm');
	await expect(page.getByText(/no shader-f16/)).toBeVisible();
	const text = await generateText(page);
	expect(text.trim().split(' ').length).toBeGreaterThan(0);
	expect(text.trim()).toMatch(/^(t\d+ ?)+$/);
	await shot(page, 'tests/screenshots/exported-llama-files.png', true);
});

test('chat mode on an instruction-tuned catalogue model: the prompt becomes the user turn of its chat template', async ({ page }) => {
	writeExportRepo(CHAT_REPO, true);
	// The template, rendered by hand: BOS, then "<start_of_turn>user PROMPT <end_of_turn> <start_of_turn>model".
	const expected = await referenceCompletion(
		['<start_of_turn>', 'user', ...PROMPT.split(' '), '<end_of_turn>', '<start_of_turn>', 'model'],
		chatVocabulary()
	);
	const plain = await referenceCompletion(PROMPT.split(' '), chatVocabulary());
	expect(expected).not.toBe(plain); // the template must change what the model reads
	await openApp(page, { model: 'gemma-3-270m-it', prompt: PROMPT, temperature: 0, max_tokens: STEPS, chat: 1 });
	await waitForModel(page);
	await expect(page.getByTestId('chat-mode')).toBeChecked();
	expect((await generateText(page)).trim()).toBe(expected);
	// Steering's positions count what the model reads: in chat mode the template's tokens too (BOS and
	// the 8 tokens above: generated tokens start at 9); without it, BOS and the 3 words (4).
	const vectors = page.getByTestId('steering-vectors');
	await vectors.getByTestId('contrast-positive').fill('bad ked mif');
	await vectors.getByTestId('contrast-negative').fill('tar tar tar');
	await vectors.getByTestId('contrast-make').click();
	await vectors.getByTestId('vector-steer').click();
	await page.getByTestId('steer-scope').selectOption('generated');
	await expect(page.getByTestId('steer-help')).toContainText('(positions 9 on)');
	await page.getByTestId('steer-help').scrollIntoViewIfNeeded();
	await shot(page, 'tests/screenshots/steer-scope-chat.png');
	await page.getByTestId('chat-mode').uncheck();
	await expect(page).not.toHaveURL(/chat=1/);
	await expect(page.getByTestId('steer-help')).toContainText('(positions 4 on)');
	await page.getByTestId('steer-reset').click();
	expect((await generateText(page)).trim()).toBe(plain);
});

test('steering works on an exported model too: a contrast vector at a hook surgery found changes the completion', async ({ page }) => {
	writeExportRepo();
	await openApp(page, { model: 'gpt2-small', prompt: PROMPT, temperature: 0, max_tokens: 10 });
	await waitForModel(page);
	const vectors = page.getByTestId('steering-vectors');
	await vectors.getByTestId('contrast-positive').fill('bad ked mif');
	await vectors.getByTestId('contrast-negative').fill('tar tar tar');
	await vectors.getByTestId('contrast-hook').selectOption('blocks.2.hook_resid_pre');
	await vectors.getByTestId('contrast-make').click();
	await vectors.getByTestId('vector-steer').click();
	await page.getByTestId('steer-value').fill('3');
	await page.getByTestId('steer-value').press('Enter');
	await page.getByTestId('steer-generate').click();
	// Not "disabled, then enabled": on wasm the ten tokens can be written before the button is looked at.
	await expect(page.getByTestId('divergence')).toBeVisible({ timeout: 200_000 });
	await expect(page.getByTestId('steer-generate')).toBeEnabled();
	// The model is now cut at the vector's hook.
	await page.getByText('Hook points').click();
	await expect(page.getByTestId('hook-manifest')).toContainText('cut now at blocks.2.hook_resid_pre');
	await shot(page, 'tests/screenshots/exported-steering.png', true);
});

// The SAE explorer's issue-13 wiring, through the engine's own session in Node (wasm) on stories260K:
// an SAE loaded by its SAELens release id from a local Hub mirror (files written here by hand, in the
// Hub's layout), its sparsity.safetensors as the feature density before any corpus run (card and the
// per-token densities the density filter reads), the Neuronpedia id; labels imported from a gzipped
// Neuronpedia JSONL with several explanations per feature (counted apart, all kept, Neuronpedia's
// order); a feature written as Neuronpedia feature JSON and read back as an offline card; labels as
// explanation JSONL; a corpus run with an SAE at a hook inside a layer (mlp_out) against a plain TS
// encoder on the reference forward; and labels stored by version 3 of the database upgraded.
import './liftoff-only';
import './engine-in-node';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';
import { ModelSession } from '../../src/lib/engine/model/session';
import { SaeExplorer } from '../../src/lib/engine/sae/explorer';
import { parseNeuronpediaFeature } from '../../src/lib/engine/sae/neuronpedia';
import { fromNeuronpediaFeature } from '../../src/lib/engine/sae/feature-pages';
import { parseNeuronpediaExplanations } from '../../src/lib/engine/sae/labels';
import { upgradeLabel, type FeatureLabel } from '../../src/lib/engine/store/db';
import { stories260KDir } from '../fixtures';
import { maxAbsDiff } from '../numeric';
import { readLlama2cCheckpoint } from '../../src/lib/engine/model/llama2c/checkpoint';
import { ReferenceLlama } from '../../src/lib/engine/model/llama2c/reference-forward';

// Node has no IndexedDB: labels live in a map (corpus runs: none yet, as in a fresh browser).
const labels = new Map<string, FeatureLabel>();
vi.mock('../../src/lib/engine/store/db', async (original) => ({
	...(await original<object>()),
	latestCorpusRun: async () => undefined,
	saveCorpusRun: async () => {},
	putLabels: async (ls: FeatureLabel[]) => ls.forEach((l) => labels.set(`${l.sae}|${l.feature}`, structuredClone(l))),
	getLabel: async (sae: string, f: number) => labels.get(`${sae}|${f}`),
	labelsFor: async (sae: string) => [...labels.values()].filter((l) => l.sae === sae)
}));

const D_IN = 64;
const D_SAE = 8;
const FOLDER = 'blocks.1.hook_resid_pre';
const REPO = 'jbloom/GPT2-Small-SAEs-Reformatted'; // where SAELens's registry puts gpt2-small-res-jb
// log10 firing rates as SAELens's trainer writes them (log10(rate + 1e-10)); -10 is a dead feature.
const LOG_SPARSITY = [-1, -2, -0.5, -10, -3, -1.5, -0.1, -4];

/** A safetensors file by the spec (8-byte header length, JSON header, little-endian F32 data), not Loupe's writer. */
function safetensors(tensors: Record<string, { shape: number[]; data: number[] }>): Buffer {
	const header: Record<string, unknown> = {};
	let off = 0;
	for (const [k, t] of Object.entries(tensors)) {
		header[k] = { dtype: 'F32', shape: t.shape, data_offsets: [off, off + 4 * t.data.length] };
		off += 4 * t.data.length;
	}
	const json = Buffer.from(JSON.stringify(header));
	const len = Buffer.alloc(8);
	len.writeBigUInt64LE(BigInt(json.length));
	return Buffer.concat([len, json, ...Object.values(tensors).map((t) => Buffer.from(Float32Array.from(t.data).buffer))]);
}

let server: Server;
let hub = '';

beforeAll(async () => {
	const root = mkdtempSync(join(tmpdir(), 'loupe-hub-'));
	const dir = join(root, REPO, 'resolve/main', FOLDER);
	mkdirSync(dir, { recursive: true });
	// A pre-6.0 SAELens cfg (what the real release has), ReLU; the weights are small smooth numbers.
	writeFileSync(
		join(dir, 'cfg.json'),
		JSON.stringify({
			d_in: D_IN,
			d_sae: D_SAE,
			hook_point: FOLDER,
			hook_point_layer: 1,
			model_name: 'gpt2-small',
			dtype: 'float32',
			architecture: 'standard'
		})
	);
	const w = (n: number, s: number) => Array.from({ length: n }, (_, i) => 0.3 * Math.sin(s * i + 1));
	writeFileSync(
		join(dir, 'sae_weights.safetensors'),
		safetensors({
			W_enc: { shape: [D_IN, D_SAE], data: w(D_IN * D_SAE, 0.37) },
			W_dec: { shape: [D_SAE, D_IN], data: w(D_SAE * D_IN, 0.53) },
			b_enc: { shape: [D_SAE], data: Array(D_SAE).fill(0.05) },
			b_dec: { shape: [D_IN], data: Array(D_IN).fill(0) }
		})
	);
	writeFileSync(join(dir, 'sparsity.safetensors'), safetensors({ sparsity: { shape: [D_SAE], data: LOG_SPARSITY } }));
	server = createServer((req, res) => {
		try {
			const body = readFileSync(resolve(root, decodeURIComponent(new URL(req.url!, 'http://x').pathname).slice(1)));
			res.writeHead(200, { 'content-length': body.length }).end(body);
		} catch {
			res.writeHead(404).end();
		}
	});
	await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
	hub = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

const fileAt = (name: string) => new File([readFileSync(resolve(stories260KDir, name))], name);

describe('an SAE by its SAELens release id, with sparsity.safetensors, labels and Neuronpedia files', () => {
	let session: ModelSession;
	let explorer: SaeExplorer;
	// The rate SAELens logged: 10^l − 1e-10 (a dead feature: 0); read from fp32, so to 1e-6 relative.
	const density = LOG_SPARSITY.map((l) => (l <= -10 ? 0 : 10 ** l - 1e-10));
	const expectDensity = (got: number | undefined, f: number) => expect(Math.abs(got! - density[f])).toBeLessThanOrEqual(1e-6 * density[f]);

	beforeAll(async () => {
		session = new ModelSession();
		await session.loadFromFiles([fileAt('stories260K.bin'), fileAt('tok512.bin')]);
		explorer = new SaeExplorer(session);
	}, 60_000);

	it("loads gpt2-small-res-jb / blocks.1.hook_resid_pre from the mirror: the release's overrides, its Neuronpedia id, the file's densities", async () => {
		const info = await explorer.loadFromRelease({ hub, release: 'gpt2-small-res-jb', saeId: FOLDER }, () => {});
		expect(info.cfg).toMatchObject({ hookName: FOLDER, dIn: D_IN, dSae: D_SAE, neuronpediaId: 'gpt2-small/1-res-jb', centerInput: true });
		expect(info.densitySource).toBe('sparsity.safetensors');
		expect(maxAbsDiff(info.logSparsity!, LOG_SPARSITY.map(Math.fround))).toBe(0);
		expect(session.requireModel().info.cutAt).toEqual([FOLDER]);
	});

	it('a release or SAE id the registry lacks is refused with the ids there are', async () => {
		await expect(
			explorer.loadFromRelease({ hub, release: 'gpt2-small-res-jb', saeId: 'blocks.99.hook_resid_pre' }, () => {})
		).rejects.toThrow(/ID blocks\.99\.hook_resid_pre not found in release gpt2-small-res-jb/);
	});

	it('before any corpus run the card and the density filter read the densities of sparsity.safetensors', async () => {
		const { tokens } = await explorer.analyze('Once upon a time there was a cat', 4);
		const seen = tokens.flatMap((t) => t.features);
		expect(seen.length).toBeGreaterThan(0);
		for (const f of seen) expectDensity(f.density, f.id);
		for (const f of [2, 3, 6]) {
			const d = await explorer.feature(f, 5);
			expect(d.density!.source).toBe('sparsity.safetensors');
			expectDensity(d.density!.value, f);
			expect(d.neuronpediaId).toBe('gpt2-small/1-res-jb');
			expect(d.corpus).toBeNull();
		}
	});

	it("imports a gzipped Neuronpedia JSONL: features and explanations counted apart, every explanation kept in Neuronpedia's order", async () => {
		const rows = [
			{ modelId: 'gpt2-small', layer: '1-res-jb', index: '2', description: 'cats, weakly', scoreV1: 0.3 },
			{
				modelId: 'gpt2-small',
				layer: '1-res-jb',
				index: '2',
				description: 'the word cat',
				scoreV1: 0.8,
				explanationModelName: 'gpt-4o-mini'
			},
			{ modelId: 'gpt2-small', layer: '1-res-jb', index: '5', description: 'once upon' },
			{ modelId: 'gpt2-small', layer: '1-res-jb', index: '99', description: 'beyond this SAE' },
			{ nope: true }
		];
		const gz = gzipSync(Buffer.from(rows.map((r) => JSON.stringify(r)).join('\n')));
		const bytes = gz.buffer.slice(gz.byteOffset, gz.byteOffset + gz.byteLength) as ArrayBuffer;
		expect(await explorer.importLabels(bytes, 'batch-0.jsonl.gz')).toEqual({ features: 2, explanations: 3, skipped: 2 });
		const card = await explorer.feature(2, 5);
		expect(card.label!.description).toBe('the word cat');
		expect(card.label!.explanations.map((e) => [e.description, e.scoreV1])).toEqual([
			['the word cat', 0.8],
			['cats, weakly', 0.3]
		]);
		// One's own label keeps the imported explanations beside it.
		await explorer.setLabel(2, 'cats (mine)');
		const mine = await explorer.feature(2, 5);
		expect(mine.label).toMatchObject({ description: 'cats (mine)', source: 'user' });
		expect(mine.label!.explanations).toHaveLength(2);
	});

	it('a feature as Neuronpedia feature JSON reads back as an offline card with what the card showed', async () => {
		const shown = await explorer.feature(2, 5);
		const { fileName, text } = await explorer.featureNeuronpediaJson(2, 5);
		expect(fileName).toBe('gpt2-small_1-res-jb_2.json');
		const json = JSON.parse(text);
		expect(json).toMatchObject({ modelId: 'gpt2-small', layer: '1-res-jb', index: '2', hookName: FOLDER });
		expectDensity(json.frac_nonzero, 2);
		const card = fromNeuronpediaFeature(parseNeuronpediaFeature(new TextEncoder().encode(text), fileName), fileName);
		expect(card.imported).toEqual({ modelId: 'gpt2-small', layer: '1-res-jb', file: fileName });
		expect(card.feature).toBe(2);
		expect(card.neuronpediaId).toBe('gpt2-small/1-res-jb'); // a source Neuronpedia hosts: the card links there
		expect(fromNeuronpediaFeature({ ...parseNeuronpediaFeature(text), layer: '1-loupe-8' }, fileName).neuronpediaId).toBeUndefined();
		expect(card.density).toEqual({ value: json.frac_nonzero, source: 'Neuronpedia' });
		expect(card.positiveLogits.map((x) => [x.piece, x.value])).toEqual(shown.positiveLogits.map((x) => [x.piece, x.value]));
		expect(card.negativeLogits.map((x) => x.piece)).toEqual(shown.negativeLogits.map((x) => x.piece));
		expect(card.nearest).toEqual(shown.nearest.map(({ id, value }) => ({ id, value })));
		// All three, in the order Neuronpedia lists them (scored first): one's own label has no score.
		expect(card.label!.explanations.map((e) => e.description)).toEqual(['the word cat', 'cats, weakly', 'cats (mine)']);
	});

	it("the SAE's labels as Neuronpedia explanation JSONL: one's own label and every imported explanation", async () => {
		const { fileName, text, count } = await explorer.explanationsNeuronpediaJsonl();
		expect(fileName).toBe('gpt2-small_1-res-jb_explanations.jsonl');
		expect(count).toBe(4);
		const back = parseNeuronpediaExplanations(text, fileName);
		expect(back.skipped).toBe(0);
		expect(back.explanations.map((e) => [e.feature, e.description])).toEqual([
			[2, 'cats (mine)'],
			[2, 'the word cat'],
			[2, 'cats, weakly'],
			[5, 'once upon']
		]);
		for (const line of text.trim().split('\n')) expect(JSON.parse(line)).toMatchObject({ modelId: 'gpt2-small', layer: '1-res-jb' });
	});
});

describe('a corpus run with an SAE at blocks.1.hook_mlp_out', () => {
	it("counts what a plain TS ReLU encoder gives on the reference forward's mlp_out, context by context", { timeout: 120_000 }, async () => {
		const session = new ModelSession();
		await session.loadFromFiles([fileAt('stories260K.bin'), fileAt('tok512.bin')]);
		const explorer = new SaeExplorer(session);
		const hook = 'blocks.1.hook_mlp_out';
		const wEnc = Array.from({ length: D_IN * D_SAE }, (_, i) => 0.8 * Math.sin(0.37 * i + 1));
		const bEnc = Array.from({ length: D_SAE }, (_, j) => 0.05 - 0.02 * j);
		const cfg = {
			d_in: D_IN,
			d_sae: D_SAE,
			hook_name: hook,
			model_name: 'stories260K',
			dtype: 'float32',
			architecture: 'standard',
			apply_b_dec_to_input: false,
			normalize_activations: 'none'
		};
		const weights = safetensors({
			W_enc: { shape: [D_IN, D_SAE], data: wEnc },
			W_dec: { shape: [D_SAE, D_IN], data: Array(D_SAE * D_IN).fill(0.01) },
			b_enc: { shape: [D_SAE], data: bEnc },
			b_dec: { shape: [D_IN], data: Array(D_IN).fill(0) }
		});
		const info = await explorer.loadFromFiles([
			new File([JSON.stringify(cfg)], 'cfg.json'),
			new File([new Uint8Array(weights)], 'sae_weights.safetensors')
		]);
		expect(info.cfg.hookName).toBe(hook);
		expect(session.requireModel().info.cutAt).toEqual([hook]);
		const text = 'Once upon a time there was a cat.\nThe little dog ran to the park.\nLily saw a big red ball.';
		const summary = await explorer.runCorpus({ name: 'pasted text', text }, () => {});
		const run = session.requireModel().sae!.run!;
		expect(summary.contexts).toBe(3);
		// The reference: mlp_out of layer 1 at every position (BOS left out), ReLU(x · W_enc + b_enc) in float64.
		const ckpt = readLlama2cCheckpoint(readFileSync(resolve(stories260KDir, 'stories260K.bin')).buffer as ArrayBuffer, 'stories260K.bin');
		const fires = new Array(D_SAE).fill(0);
		const maxAct = new Array(D_SAE).fill(0);
		let tokens = 0;
		for (const ids of run.contexts) {
			const ref = new ReferenceLlama(ckpt);
			ids.forEach((id, t) => {
				ref.step(id);
				if (t === 0) return;
				tokens++;
				const x = ref.sublayer[1].mlp_out;
				for (let j = 0; j < D_SAE; j++) {
					let pre = bEnc[j];
					for (let i = 0; i < D_IN; i++) pre += x[i] * wEnc[i * D_SAE + j];
					if (pre > 0) fires[j]++;
					maxAct[j] = Math.max(maxAct[j], pre);
				}
			});
		}
		console.log(`corpus run at ${hook}: ${tokens} tokens; max |Δ max activation| ${maxAbsDiff(run.stats.maxAct, maxAct).toExponential(2)}`);
		expect(run.stats.tokens).toBe(tokens);
		expect(maxAbsDiff(run.stats.maxAct, maxAct)).toBeLessThan(1e-4);
		expect(Math.max(...maxAct)).toBeGreaterThan(0.1);
		expect([...run.stats.fires]).toEqual(fires);
		const d = await explorer.feature(fires.indexOf(Math.max(...fires)), 3);
		expect(d.density).toEqual({ value: Math.fround(Math.max(...fires) / tokens), source: 'corpus' }); // stored as fp32
	});
});

describe('labels stored by database version 3', () => {
	it("an imported label becomes its one explanation; one's own label has none; a current label is left as it is", () => {
		const v3 = { sae: 's', feature: 4, description: 'dogs', source: 'neuronpedia' as const };
		expect(upgradeLabel(v3)).toEqual({ ...v3, explanations: [{ feature: 4, description: 'dogs' }] });
		expect(upgradeLabel({ ...v3, source: 'user' })).toEqual({ ...v3, source: 'user', explanations: [] });
		const now: FeatureLabel = {
			...v3,
			explanations: [
				{ feature: 4, description: 'a', scoreV1: 1 },
				{ feature: 4, description: 'b' }
			]
		};
		expect(upgradeLabel(now)).toBe(now);
	});
});

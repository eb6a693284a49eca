// The graph view end to end on stories260K: transcoders dropped as SAELens folders (seeded random
// weights written here, in Node), a graph built for a 4-token prompt, checked from what the page
// exports (completeness: every node's input = Σ incoming weights + bias; the first-order prediction
// of a frozen intervention computed here from the exported edges), a node's card, pins and a
// supernode in the URL, a free intervention that changes the continuation, re-import, saving.
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, hub, test, type Page, shot } from './app';

const D = 64;
const LAYERS = 5;
const WIDTH = 16;

/** mulberry32: a seeded stream in [0, 1). */
function rng(seed: number) {
	let a = seed >>> 0;
	return () => {
		a = (a + 0x6d2b79f5) >>> 0;
		let t = a;
		t = Math.imul(t ^ (t >>> 15), t | 1);
		t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
		return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
	};
}

function safetensors(tensors: Record<string, { shape: number[]; data: Float32Array }>): Buffer {
	const header: Record<string, unknown> = {};
	let off = 0;
	for (const [k, t] of Object.entries(tensors)) {
		header[k] = { dtype: 'F32', shape: t.shape, data_offsets: [off, off + t.data.byteLength] };
		off += t.data.byteLength;
	}
	const json = Buffer.from(JSON.stringify(header));
	const len = Buffer.alloc(8);
	len.writeBigUInt64LE(BigInt(json.length));
	return Buffer.concat([len, json, ...Object.values(tensors).map((t) => Buffer.from(t.data.buffer))]);
}

/** SAELens transcoder folders, one per layer: JumpReLU at even layers, ReLU with W_skip at odd ones. */
function writeTranscoders(): string {
	const root = join(mkdtempSync(join(tmpdir(), 'loupe-graph-')), 'transcoders');
	const rnd = rng(20260);
	const u = (n: number, s: number) => Float32Array.from({ length: n }, () => (rnd() * 2 - 1) * s);
	for (let l = 0; l < LAYERS; l++) {
		const dir = join(root, `blocks.${l}.hook_mlp_in`);
		mkdirSync(dir, { recursive: true });
		const jump = l % 2 === 0;
		const t: Record<string, { shape: number[]; data: Float32Array }> = {
			W_enc: { shape: [D, WIDTH], data: u(D * WIDTH, 0.3) },
			// Mostly negative biases: a few features fire at each position, so the graph stays small and quick.
			b_enc: { shape: [WIDTH], data: Float32Array.from(u(WIDTH, 0.15), (v) => v - 0.2) },
			W_dec: { shape: [WIDTH, D], data: u(WIDTH * D, 0.2) },
			b_dec: { shape: [D], data: u(D, 0.05) }
		};
		if (jump) t.threshold = { shape: [WIDTH], data: Float32Array.from({ length: WIDTH }, () => rnd() * 0.2) };
		else t.W_skip = { shape: [D, D], data: u(D * D, 0.05) };
		writeFileSync(join(dir, 'sae_weights.safetensors'), safetensors(t));
		writeFileSync(
			join(dir, 'cfg.json'),
			JSON.stringify({
				architecture: jump ? 'jumprelu_transcoder' : 'skip_transcoder',
				d_in: D,
				d_sae: WIDTH,
				d_out: D,
				dtype: 'float32',
				device: 'cpu',
				apply_b_dec_to_input: false,
				normalize_activations: 'none',
				metadata: {
					sae_lens_version: '6.18.0',
					model_name: 'stories260K',
					hook_name: `blocks.${l}.hook_mlp_in`,
					hook_name_out: `blocks.${l}.hook_mlp_out`
				}
			})
		);
	}
	return root;
}

interface JNode {
	node_id: string;
	feature_type: string;
	layer: string;
	ctx_idx: number;
	feature: number;
	activation: number | null;
	input?: number;
	bias?: number;
}
interface JGraph {
	nodes: JNode[];
	links: { source: string; target: string; weight: number }[];
	metadata: Record<string, unknown>;
}

async function exported(page: Page, testId: string): Promise<JGraph> {
	const [dl] = await Promise.all([page.waitForEvent('download'), page.getByTestId(testId).click()]);
	return JSON.parse(readFileSync((await dl.path())!, 'utf8'));
}

/** The change in every feature's and logit's input when source features change by δ, first order, from the file's edges alone. */
function firstOrder(g: JGraph, delta: Map<string, number>): Map<string, number> {
	const act = new Map(g.nodes.map((n) => [n.node_id, n.activation ?? 0]));
	const into = new Map<string, { source: string; weight: number }[]>();
	for (const l of g.links) into.set(l.target, [...(into.get(l.target) ?? []), l]);
	const dAct = new Map(delta);
	const dInput = new Map<string, number>();
	const feats = g.nodes.filter((n) => n.feature_type === 'cross layer transcoder').sort((a, b) => Number(a.layer) - Number(b.layer));
	const pull = (id: string) =>
		(into.get(id) ?? []).reduce((s, l) => s + (dAct.has(l.source) ? (l.weight / act.get(l.source)!) * dAct.get(l.source)! : 0), 0);
	for (const f of feats) {
		const d = pull(f.node_id);
		dInput.set(f.node_id, d);
		// An active JumpReLU/ReLU feature passes its pre-activation's change on one for one; an intervened one stays set.
		if (!delta.has(f.node_id) && d !== 0) dAct.set(f.node_id, d);
	}
	for (const n of g.nodes) if (n.feature_type === 'logit') dInput.set(n.node_id, pull(n.node_id));
	return dInput;
}

test.beforeAll(() => {
	mkdirSync('tests/screenshots', { recursive: true });
});

test.setTimeout(90_000);

test('graph view: build, completeness from the export, a card, a frozen intervention as the graph predicts, a free one that changes the text', async ({
	page
}) => {
	const t0 = Date.now();
	const folder = writeTranscoders();
	const lap = (what: string) => console.log(`  ${((Date.now() - t0) / 1000).toFixed(1)} s: ${what}`);
	await page.setViewportSize({ width: 1280, height: 800 });
	await page.goto(`/graph?${new URLSearchParams({ hub: hub() })}`);
	// No bundled transcoders yet, or they are loaded: either way the dropped folders replace them.
	await expect(page.getByTestId('status-line')).toContainText('stories260K', { timeout: 120_000 });
	await page.getByTestId('transcoder-folder').setInputFiles(folder);
	await expect(page.getByTestId('transcoders-info')).toHaveAttribute('data-layers', String(LAYERS));
	lap('model and transcoders loaded');
	await page.getByTestId('graph-prompt').fill('Lily saw a');
	await page.getByTestId('graph-build').click();
	const svg = page.getByTestId('graph-svg');
	await expect(svg).toBeVisible({ timeout: 60_000 });
	const shown = Number(await svg.getAttribute('data-nodes'));
	lap('graph built');
	expect(shown).toBeGreaterThan(5);

	// Completeness, from the exported unpruned file alone.
	const g = await exported(page, 'graph-export-unpruned');
	const incoming = new Map<string, number>();
	for (const l of g.links) incoming.set(l.target, (incoming.get(l.target) ?? 0) + l.weight);
	const targets = g.nodes.filter((n) => n.feature_type === 'cross layer transcoder' || n.feature_type === 'logit');
	let worst = 0;
	for (const n of targets)
		worst = Math.max(worst, Math.abs((incoming.get(n.node_id) ?? 0) + n.bias! - n.input!) / Math.max(1, Math.abs(n.input!)));
	console.log(
		`graph: ${g.nodes.length} nodes, ${g.links.length} edges unpruned, ${shown} nodes shown; completeness worst relative ${worst.toExponential(2)}`
	);
	expect(targets.length).toBeGreaterThan(10);
	expect(worst).toBeLessThan(1e-4);

	lap('exported, completeness checked');
	// The feature with the strongest edge into the top logit that the pruned view shows: click it, its card opens.
	const logits = g.nodes.filter((n) => n.feature_type === 'logit');
	const top = logits[0].node_id;
	const onView = new Set(await page.getByTestId('graph-node').evaluateAll((els) => els.map((e) => e.getAttribute('data-node-id'))));
	const candidates = g.links
		.filter((l) => l.target === top && onView.has(l.source) && g.nodes.find((n) => n.node_id === l.source)!.feature_type !== 'logit')
		.filter((l) => g.nodes.find((n) => n.node_id === l.source)!.feature_type === 'cross layer transcoder')
		.sort((a, b) => Math.abs(b.weight) - Math.abs(a.weight));
	expect(candidates.length).toBeGreaterThan(0);
	const pick = candidates[0].source;
	await page.locator(`[data-testid="graph-node"][data-node-id="${pick}"]`).click();
	await expect(page.getByTestId('node-panel')).toHaveAttribute('data-node-id', pick);
	await expect(page.getByTestId('feature-card')).toBeVisible();
	await expect(page.getByTestId('feature-card')).toHaveAttribute('data-feature', pick.split('_')[1]);

	lap('card open');
	// Pin it and the top logit, group them: the URL keeps both.
	await page.getByTestId('node-pin').click();
	await page.locator(`[data-testid="graph-node"][data-node-id="${top}"]`).click();
	await page.getByTestId('node-pin').click();
	await page.getByTestId('pinned-node').first().locator('input').check();
	await page.getByTestId('pinned-node').nth(1).locator('input').check();
	await page.getByTestId('supernode-name').fill('says a');
	await page.getByTestId('supernode-make').click();
	await expect(page).toHaveURL(new RegExp(`pin=${pick}%2C${top}`));
	await expect(page).toHaveURL(/sn=says\+a%3A/);

	lap('pinned, supernode');
	// Frozen attention (the replacement model): scale the feature by 1.01; the logits move as the file's edges say.
	await page.locator(`[data-testid="graph-node"][data-node-id="${pick}"]`).click();
	await page.getByTestId('node-factor').fill('1.01');
	await page.getByTestId('node-scale').click();
	const rows = page.getByTestId('iv-target');
	await expect(rows.first()).toBeVisible();
	const a = g.nodes.find((n) => n.node_id === pick)!.activation!;
	const predicted = firstOrder(g, new Map([[pick, 0.01 * a]]));
	const measured = await rows.evaluateAll((els) =>
		els.map((e) => ({ token: Number(e.getAttribute('data-token')), delta: Number(e.getAttribute('data-delta')) }))
	);
	let size = 0;
	let off = 0;
	for (const m of measured) {
		const node = logits.find((n) => n.feature === m.token)!;
		const p = predicted.get(node.node_id)!;
		size = Math.max(size, Math.abs(m.delta));
		off = Math.max(off, Math.abs(m.delta - p));
	}
	console.log(
		`frozen intervention (×1.01): max |Δ demeaned logit| ${size.toExponential(2)}, first-order prediction from the file off by ${off.toExponential(2)}`
	);
	expect(size).toBeGreaterThan(1e-5);
	expect(off).toBeLessThan(2e-2 * size + 1e-7);

	lap('frozen intervention');
	// The preset fills a suppress + inject pair.
	await page.getByTestId('iv-preset').click();
	await expect(page.getByTestId('iv-item')).toHaveCount(2);

	// Free attention: inject layer 3's strongest last-position feature at 40× (at least 20), and generate side by side.
	const P = (g.metadata.prompt_tokens as string[]).length;
	const l3 = g.nodes
		.filter((n) => n.feature_type === 'cross layer transcoder' && n.layer === '3' && n.ctx_idx === P - 1)
		.sort((x, y) => y.activation! - x.activation!)[0];
	for (let i = await page.getByTestId('iv-item').count(); i > 0; i--) await page.getByTestId('iv-item').first().getByRole('button').click();
	await page.getByTestId('iv-mode').selectOption('free');
	await page.getByTestId('inject-feature').fill(String(l3.feature));
	await page.getByTestId('inject-layer').selectOption('3');
	await page.getByTestId('inject-pos').selectOption(String(P - 1));
	await page.getByTestId('inject-value').fill(String(Math.max(20, 40 * l3.activation!)));
	await page.getByTestId('inject-add').click();
	await page.getByTestId('iv-steps').fill('8');
	await page.getByTestId('iv-generate').click();
	await expect(page.getByTestId('iv-continuation')).toBeVisible({ timeout: 60_000 });
	const plain = (await page.getByTestId('iv-default').textContent())!;
	const steered = (await page.getByTestId('iv-intervened').textContent())!;
	console.log(`free intervention: "${plain}" → "${steered}"`);
	expect(plain.trim().length).toBeGreaterThan(0);
	expect(steered).not.toEqual(plain);

	lap('free intervention, side by side');
	await page.evaluate(() => window.scrollTo(0, 0));
	await shot(page, 'tests/screenshots/graph-1280x800.png');
	await page.setViewportSize({ width: 1920, height: 1080 });
	await shot(page, 'tests/screenshots/graph-1920x1080.png');

	// Re-import: the file opens as the same graph (the same file comes back out).
	await page
		.getByTestId('graph-import')
		.setInputFiles({ name: 'g.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(g)) });
	await expect(svg).toHaveAttribute('data-nodes', String(shown));
	const again = await exported(page, 'graph-export-unpruned');
	expect(again.nodes).toEqual(g.nodes);
	expect(again.links).toEqual(g.links);

	lap('re-imported');
	// Saved in IndexedDB, listed, deleted.
	await page.getByTestId('graph-save-name').fill('lily');
	await page.getByTestId('graph-save').click();
	await expect(page.getByTestId('saved-graph')).toHaveCount(1);
	await page.getByTestId('saved-delete').click();
	await expect(page.getByTestId('saved-graph')).toHaveCount(0);
	console.log(`graph spec body: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
});

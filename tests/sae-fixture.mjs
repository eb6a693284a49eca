// Writes SAELens-format SAEs for stories260K into tests/.generated-hub (served under /hub/ by
// tests/serve.mjs), built from known directions so the tests know what must fire where.
// Plain JavaScript, so both the Playwright specs and the benchmark script (Node) use it.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const stories260KDir = resolve(
	process.env.LOUPE_FIXTURES ?? resolve(here, '../../shared/fixtures'),
	'hub/karpathy/tinyllamas/resolve/main/stories260K'
);
const generatedHub = resolve(here, '.generated-hub');
export const TEST_REPO = 'loupe-tests/stories260K-saes';

/** stories260K's token embedding [512, 64], read straight from the legacy checkpoint's bytes. */
/** @returns {Float32Array[]} */
export function tokenEmbedding() {
	const b = readFileSync(`${stories260KDir}/stories260K.bin`);
	const all = new Float32Array(b.buffer.slice(b.byteOffset + 28, b.byteOffset + 28 + 512 * 64 * 4));
	return Array.from({ length: 512 }, (_, v) => all.slice(v * 64, (v + 1) * 64));
}

/** @param {Record<string, { shape: number[]; data: Float32Array }>} tensors */
function safetensors(tensors) {
	/** @type {Record<string, unknown>} */
	const header = {};
	let off = 0;
	for (const [k, t] of Object.entries(tensors)) {
		header[k] = { dtype: 'F32', shape: t.shape, data_offsets: [off, off + t.data.byteLength] };
		off += t.data.byteLength;
	}
	const json = Buffer.from(JSON.stringify(header));
	const len = Buffer.alloc(8);
	len.writeBigUInt64LE(BigInt(json.length));
	return Buffer.concat([len, json, ...Object.values(tensors).map((t) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength))]);
}

/**
 * @param {string} folder
 * @param {object} cfg
 * @param {Record<string, { shape: number[]; data: Float32Array }>} tensors
 * @param {number} [truncateTo]
 */
function writeSae(folder, cfg, tensors, truncateTo) {
	const dir = resolve(generatedHub, TEST_REPO, 'resolve/main', folder);
	mkdirSync(dir, { recursive: true });
	writeFileSync(`${dir}/cfg.json`, JSON.stringify(cfg));
	const bytes = safetensors(tensors);
	writeFileSync(`${dir}/sae_weights.safetensors`, truncateTo ? bytes.subarray(0, truncateTo) : bytes);
}

/**
 * "token-detector" at blocks.0.hook_resid_pre (the embedding): feature v reads the direction of
 * token v's embedding, scaled so token v itself gives pre-activation 1, with b_enc = -0.5:
 * at a position holding token v, feature v fires with exactly 0.5.
 */
export function writeTestSaes() {
	const emb = tokenEmbedding();
	const dIn = 64;
	const dSae = 512;
	const wEnc = new Float32Array(dIn * dSae);
	const wDec = new Float32Array(dSae * dIn);
	emb.forEach((e, v) => {
		const n2 = e.reduce((a, x) => a + x * x, 0);
		for (let i = 0; i < dIn; i++) {
			wEnc[i * dSae + v] = e[i] / n2;
			wDec[v * dIn + i] = e[i];
		}
	});
	const tensors = {
		W_enc: { shape: [dIn, dSae], data: wEnc },
		W_dec: { shape: [dSae, dIn], data: wDec },
		b_enc: { shape: [dSae], data: new Float32Array(dSae).fill(-0.5) },
		b_dec: { shape: [dIn], data: new Float32Array(dIn) }
	};
	const cfg = {
		architecture: 'standard',
		d_in: dIn,
		d_sae: dSae,
		dtype: 'float32',
		apply_b_dec_to_input: false,
		normalize_activations: 'none',
		metadata: {
			model_name: 'stories260K',
			hook_name: 'blocks.0.hook_resid_pre',
			model_from_pretrained_kwargs: { center_writing_weights: false }
		}
	};
	writeSae('token-detector', cfg, tensors);
	// The same SAE declared for a 32-wide model: must be refused on stories260K (d_model 64).
	writeSae(
		'wrong-width',
		{ ...cfg, d_in: 32 },
		{
			...tensors,
			W_enc: { shape: [32, dSae], data: wEnc.subarray(0, 32 * dSae) },
			W_dec: { shape: [dSae, 32], data: wDec.subarray(0, dSae * 32) },
			b_dec: { shape: [32], data: new Float32Array(32) }
		}
	);
	// Cut short: its safetensors header promises more data than there is.
	writeSae('truncated', cfg, tensors, 40_000);
	// The same directions read at the last layer's output (blocks.4.hook_resid_post): there W_dec[v]
	// (token v's embedding, which is also its unembedding row) pushes the logits straight towards v.
	writeSae('last-layer', { ...cfg, metadata: { ...cfg.metadata, hook_name: 'blocks.4.hook_resid_post' } }, tensors);
}

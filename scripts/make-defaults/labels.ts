/**
 * The automatic labels of `npm run make-defaults`: per feature, the tokens where its top examples
 * peak and its top direct logit effects (the plain TS reference of the feature card's logits), made
 * into a short label (engine/defaults/auto-label.ts) and written as Neuronpedia explanation JSONL,
 * marked as Loupe's automatic explanations.
 */
import { writeFileSync } from 'node:fs';
import { readLlama2cCheckpoint } from '../../src/lib/engine/model/llama2c/checkpoint';
import { Llama2cTokenizer } from '../../src/lib/engine/model/llama2c/tokenizer';
import { readSaeFiles } from '../../src/lib/engine/sae/load';
import { Sae } from '../../src/lib/engine/sae/sae';
import { logitEffectsReference, ranked } from '../../src/lib/engine/sae/features';
import { TOP_EXAMPLES, type FeatureStats } from '../../src/lib/engine/sae/corpus-stats';
import { autoLabel } from '../../src/lib/engine/defaults/auto-label';

export const AUTO_MODEL = 'loupe-auto (top tokens and top logits)';
export const AUTO_TYPE = 'loupe-automatic';

/** Writes one explanation per feature; returns how many features fired in the corpus. */
export function writeLabels(
	path: string,
	hook: string,
	cfgJson: string,
	safetensors: Uint8Array,
	stats: FeatureStats,
	contexts: number[][],
	checkpoint: ArrayBuffer,
	tokenizerBytes: ArrayBuffer
): number {
	const weights = readLlama2cCheckpoint(checkpoint, 'stories260K.bin');
	const tokenizer = new Llama2cTokenizer(tokenizerBytes, weights.config.vocabSize, 'tok512.bin');
	const { cfg, weights: w } = readSaeFiles([
		{ name: 'cfg.json', buffer: new TextEncoder().encode(cfgJson).buffer as ArrayBuffer },
		{ name: 'sae_weights.safetensors', buffer: safetensors.slice().buffer as ArrayBuffer }
	]);
	const sae = Sae.create(cfg, w);
	const u = {
		vocabSize: weights.config.vocabSize,
		dModel: weights.config.dim,
		classifier: weights.classifier,
		normWeight: weights.rmsFinal
	};
	const layer = /^blocks\.(\d+)\./.exec(hook)?.[1] ?? '0';
	const rows: string[] = [];
	let fired = 0;
	for (let f = 0; f < cfg.dSae; f++) {
		const tops: string[] = [];
		for (let j = 0; j < TOP_EXAMPLES; j++) {
			const i = f * TOP_EXAMPLES + j;
			if (!(stats.topVal[i] > 0)) break;
			tops.push(tokenizer.pieceText(contexts[stats.topRef[2 * i]][stats.topRef[2 * i + 1]]));
		}
		if (tops.length) fired++;
		const logits = ranked(logitEffectsReference(sae, f, u), 3).map((x) => tokenizer.pieceText(x.id));
		rows.push(
			JSON.stringify({
				modelId: 'stories260K',
				layer: `${layer}-${hook.split('.').pop()}-loupe`,
				index: String(f),
				description: autoLabel(tops, logits),
				explanationModelName: AUTO_MODEL,
				typeName: AUTO_TYPE
			})
		);
	}
	writeFileSync(path, rows.join('\n') + '\n');
	return fired;
}

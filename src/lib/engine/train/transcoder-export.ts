/**
 * A transcoder trained in Loupe as SAELens files: cfg.json (architecture transcoder / skip_transcoder
 * / jumprelu_transcoder, d_out, metadata.hook_name_out) + sae_weights.safetensors (W_skip where it
 * has one). The trainer saw the input times `scales.in` and the target times `scales.out`; both are
 * folded into the weights (sae/formats/saelens.ts foldActivationScale), so the files run on the raw
 * hooks, as SAELens runs them. TopK and JumpReLU-with-skip transcoders have no SAELens class yet:
 * they are written as topk_transcoder / jumprelu_skip_transcoder, which Loupe reads back.
 */
import type { SaeConfig, SaeWeights } from '../sae/config';
import { foldActivationScale, writeSaeLens } from '../sae/formats/saelens';
import { Transcoder, type TranscoderConfig } from '../sae/transcoder';
import { outWidth, type SaeParams, type TrainShape } from './reference';

export interface TranscoderExportMeta {
	hookName: string; // blocks.L.hook_mlp_in
	hookNameOut: string; // blocks.L.hook_mlp_out
	modelName?: string;
	contextSize?: number;
	name?: string;
}

/** The SaeConfig and weights of a trained transcoder, scales not yet folded (writeSaeLens folds them). */
export function trainedTranscoder(
	p: SaeParams,
	s: TrainShape,
	scales: { in: number; out: number },
	meta: TranscoderExportMeta
): { cfg: SaeConfig; weights: SaeWeights } {
	const cfg: SaeConfig = {
		architecture: s.arch,
		dIn: s.d,
		dSae: s.n,
		dOut: outWidth(s),
		hookName: meta.hookName,
		hookNameOut: meta.hookNameOut,
		skip: Boolean(s.skip && p.wSkip) || undefined,
		k: s.arch === 'topk' ? s.k : undefined,
		applyBDecToInput: false,
		normalizeActivations: 'expected_average_only_in',
		normScale: scales.in,
		normScaleOut: scales.out,
		centerInput: false,
		modelName: meta.modelName,
		contextSize: meta.contextSize,
		format: 'SAELens (trained in Loupe)',
		dtype: 'float32',
		name: meta.name ?? `${meta.modelName ?? 'model'} transcoder ${meta.hookName} → ${meta.hookNameOut}`
	};
	const weights: SaeWeights = {
		wEnc: p.wEnc,
		bEnc: p.bEnc,
		wDec: p.wDec,
		bDec: p.bDec,
		threshold: p.logThreshold ? p.logThreshold.map(Math.exp) : undefined,
		wSkip: cfg.skip ? p.wSkip : undefined
	};
	return { cfg, weights };
}

/** cfg.json text and sae_weights.safetensors bytes of a trained transcoder. */
export function transcoderToSaeLens(p: SaeParams, s: TrainShape, scales: { in: number; out: number }, meta: TranscoderExportMeta) {
	const { cfg, weights } = trainedTranscoder(p, s, scales, meta);
	return writeSaeLens(cfg, weights);
}

/**
 * A trained transcoder on the raw hooks (the scales folded into copies of its weights), as the CE
 * evaluation runs it: what the exported files give once read back.
 */
export function rawTranscoder(trained: { cfg: SaeConfig; weights: SaeWeights }): Transcoder {
	const { cfg, weights: w } = trained;
	const folded: SaeWeights = { ...w, wEnc: w.wEnc.slice(), wDec: w.wDec.slice(), bDec: w.bDec.slice(), wSkip: w.wSkip?.slice() };
	foldActivationScale(folded, cfg.normScale ?? 1, cfg.normScaleOut ?? cfg.normScale ?? 1);
	const raw = { ...cfg, normalizeActivations: 'none', normScale: undefined, normScaleOut: undefined } as TranscoderConfig;
	return new Transcoder(raw, folded);
}

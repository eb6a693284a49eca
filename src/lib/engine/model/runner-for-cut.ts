/**
 * A runner for one cut of a model source: which hook names the source offers (and the canonical
 * name of each), building the runner with its weight files read for it, and the cut's hook names.
 * The model session (session.ts) uses these whenever it loads or re-cuts a model.
 */
import * as ort from 'onnxruntime-web/webgpu';
import { LoupeError } from '../errors';
import { SegmentRunner, type Backend } from './runner';
import { canonicalHook, type HookName } from './hooks';
import type { SegmentedModel } from './segments';
import type { ModelSource } from './open';
import { weightReadFailure } from './onnx/weight-file';

/** The canonical name of `hook` if the source offers it, else an error naming the hooks it has. */
export function offeredHook(source: ModelSource, modelName: string, hook: HookName): HookName {
	let name: HookName;
	try {
		name = canonicalHook(hook, source.shape.nLayers);
	} catch (e) {
		throw new LoupeError('model-failed', `${modelName}: ${(e as Error).message}`, 'Pick one of the hooks the hook picker lists.');
	}
	// resid_post L and resid_pre L+1 are one tensor: either name is offered when one is.
	if (!source.hooks.includes(name) && !source.hooks.includes(hook))
		throw new LoupeError(
			'model-failed',
			`Graph surgery found no "${hook}" in ${modelName} (see the warnings under Hook points for why), so Loupe cannot cut there.`,
			`Pick another hook: this model offers ${source.hooks.length} (${source.hooks.slice(0, 3).join(', ')}, …).`
		);
	return name;
}

/**
 * A runner for `model`, its weight files read for it (`source.readWeights`) and dropped from the
 * model once the sessions exist: onnxruntime holds its own copy, so the worker keeps none, and the
 * next cut reads them again. A weights file that could not be read again (a picked file moved or
 * changed since) is named in the error; onnxruntime itself says only that loading failed.
 */
export async function createRunner(source: ModelSource, model: SegmentedModel, backend: Backend): Promise<SegmentRunner> {
	if (source.readWeights) model.externalData = await source.readWeights();
	try {
		return await SegmentRunner.create(ort, model, backend);
	} catch (e) {
		const failed = weightReadFailure(model.externalData);
		if (failed)
			throw new LoupeError(
				'not-found',
				`${failed.name} could not be read again (${failed.error instanceof Error ? failed.error.message : failed.error}): it was moved, changed or deleted since the model was opened.`,
				'Open the model again (for your own files, pick them again).'
			);
		throw e;
	} finally {
		if (source.readWeights) delete model.externalData;
	}
}

export function cutNames(model: SegmentedModel): string[] {
	return model.segments.flatMap((s) => (s.residualOut ? [s.residualOut] : []));
}

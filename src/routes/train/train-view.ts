/**
 * What the train page says about a run, as plain functions (unit-tested in Node): the progress line
 * of each phase (rate and ETA), a listed run's state (live while it runs here, "interrupted" when a
 * closed tab left it running) and the explorer link, which gives back the prompt and settings the
 * page was opened with.
 */
import { defaultModelId } from '../../lib/engine/model/catalogue';
import type { RunPhase, TrainProgress, TrainRunSummary } from '../../lib/engine/train/training-run';

export const duration = (s: number) => (s >= 90 ? `${Math.round(s / 60)} min` : `${Math.max(1, Math.round(s))} s`);
const count = (n: number) => Math.round(n).toLocaleString('en');
const eta = (s: number) => (s > 0 ? ` · about ${duration(s)} left` : '');

const where: Record<RunPhase, string> = {
	writing: 'while the model wrote the corpus',
	harvesting: 'while harvesting activations',
	training: 'while training'
};

/** Stories, contexts or steps: what `done of total` counts in each phase. */
function position(phase: RunPhase, done: number, total: number) {
	return phase === 'writing'
		? `story ${done} of ${total}`
		: phase === 'harvesting'
			? `context ${done} of ${total}`
			: `step ${done} of ${total}`;
}

export function reuseLine(reuse: number | undefined): string {
	return reuse && reuse > 1.05 ? `each activation used about ${reuse.toFixed(reuse < 10 ? 1 : 0)} times` : '';
}

/** The progress line; CE loss recovered is added by the page (it keeps the points). */
export function phaseLine(p: TrainProgress, hook: string): string {
	const rate = p.tokensPerSecond > 0 ? ` · ${count(p.tokensPerSecond)}` : '';
	switch (p.phase) {
		case 'writing':
			return `The model writes the corpus: story ${p.done} of ${p.total}${rate && `${rate} tokens/s`}${eta(p.etaSeconds)}`;
		case 'harvesting':
			return `Harvesting activations at ${hook} into the GPU: context ${p.done} of ${p.total}${rate && `${rate} activations/s`}${eta(p.etaSeconds)}`;
		case 'training': {
			const reuse = reuseLine(p.reuse);
			return `Step ${p.done} of ${p.total}${rate && `${rate} tokens/s`}${eta(p.etaSeconds)}${reuse ? ` · ${reuse}` : ''}`;
		}
		case 'paused':
			return p.at === 'training' || !p.at
				? `Paused at step ${p.done} of ${p.total}: checkpoint saved; Resume below, even after closing the tab.`
				: `Paused ${where[p.at]} (${position(p.at, p.done, p.total)}): saved; Resume below goes on from there, even after closing the tab.`;
		case 'stopped':
			return p.at === 'training' || !p.at
				? `Stopped at step ${p.done}: the SAE so far is kept.`
				: `Stopped ${where[p.at]} (${position(p.at, p.done, p.total)}): no SAE yet; Resume goes on from there.`;
		default:
			return `Done: ${p.total} steps.`;
	}
}

/** A listed run's state: live for the run going on in this tab, else as saved ("interrupted" for a closed tab's). */
export function runState(run: TrainRunSummary, live: TrainProgress | null, runningHere: boolean): string {
	const mine = runningHere && live?.id === run.id;
	if (mine && live.phase === 'writing') return `writing the corpus · story ${live.done}/${live.total}`;
	if (mine && live.phase === 'harvesting') return `harvesting · context ${live.done}/${live.total}`;
	if (mine && live.phase === 'training') return `running · step ${live.done}/${live.total}`;
	const shown = run.status === 'running' && !mine ? 'interrupted' : run.status;
	return run.phase === 'writing' ? `${shown} · story ${run.corpusContexts}/${run.cfg.stories}` : `${shown} · step ${run.step}/${run.steps}`;
}

/**
 * The playground with the trained SAE: the query the page was opened with (prompt, sampling, hub,
 * chat…) with this run's model and SAE; a feature or steering setup of another SAE is left out.
 */
export function explorerHref(base: string, incoming: string, model: string, runId: string): string {
	const params = new URLSearchParams(incoming);
	for (const key of ['sae', 'feature', 'steer']) params.delete(key);
	if (model !== defaultModelId) params.set('model', model);
	else params.delete('model');
	params.set('sae', `trained:${runId}`);
	return `${base}/?${params}`;
}

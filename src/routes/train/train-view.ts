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

/** A row of the run list: one run, or an all-layers transcoder run's records (by layer) as one. */
export interface RunRow {
	/** The id Resume and Delete take: the run's, or the group's. */
	key: string;
	/** The record that speaks for the row (an all-layers run's first layer: every layer is at its step). */
	lead: TrainRunSummary;
	layers: TrainRunSummary[];
}

/** The run list's rows, in the list's order (newest first), an all-layers run's records gathered into one. */
export function runRows(runs: TrainRunSummary[]): RunRow[] {
	const rows: RunRow[] = [];
	const byGroup = new Map<string, RunRow>();
	for (const r of runs) {
		if (!r.group) {
			rows.push({ key: r.id, lead: r, layers: [r] });
			continue;
		}
		let row = byGroup.get(r.group);
		if (!row) {
			row = { key: r.group, lead: r, layers: [] };
			byGroup.set(r.group, row);
			rows.push(row);
		}
		row.layers.push(r);
		row.layers.sort((a, b) => (a.layer ?? 0) - (b.layer ?? 0));
		row.lead = row.layers[0];
	}
	return rows;
}

/** What a row trains: hook and architecture, or a transcoder's layers and architecture. */
export function runWhat(row: RunRow): string {
	const c = row.lead.cfg;
	const arch = `${c.arch}${c.arch === 'topk' ? ` k=${c.k}` : ''}${c.kind === 'transcoder' && c.skip ? ' + W_skip' : ''}`;
	if (c.kind !== 'transcoder') return `${c.model} · ${c.hook} · ${arch} · ${c.width} latents`;
	const where =
		row.layers.length > 1
			? `transcoders at ${row.layers.length} layers (hook_mlp_in → hook_mlp_out)`
			: `transcoder ${c.hook} → ${c.hook.replace(/hook_mlp_in$/, 'hook_mlp_out')}`;
	return `${c.model} · ${where} · ${arch} · ${c.width} latents`;
}

/** A row's figures: EV, L0 and dead of each layer (the training batches'), and CE loss recovered with its MLPs replaced. */
export function runFigures(row: RunRow): string {
	const parts = row.layers
		.filter((r) => r.last)
		.map(
			(r) =>
				`${row.layers.length > 1 ? `layer ${r.layer}: ` : ''}EV ${(100 * r.last!.explainedVariance).toFixed(1)}% · L0 ${r.last!.l0.toFixed(1)} · dead ${(100 * r.last!.dead).toFixed(0)}%`
		);
	const ce = row.lead.ce;
	if (ce)
		parts.push(`CE rec. ${(100 * ce.recovered).toFixed(0)}%${ce.replaced && ce.replaced > 1 ? ` (${ce.replaced} MLPs replaced)` : ''}`);
	return parts.join(row.layers.length > 1 ? '\n' : ' · ');
}

/** The done line's CE part: what was spliced in, and the three losses. */
export function ceLine(
	ce: { clean: number; spliced: number; zeroAblated: number; recovered: number; replaced?: number },
	transcoder: boolean
): string {
	const what = transcoder ? (ce.replaced && ce.replaced > 1 ? `with all ${ce.replaced} MLPs replaced` : 'with the MLP replaced') : '';
	const by = transcoder ? (ce.replaced && ce.replaced > 1 ? 'with the transcoders' : 'with the transcoder') : 'with the SAE';
	return `CE loss recovered ${(100 * ce.recovered).toFixed(1)}%${what ? ` ${what}` : ''} (clean ${ce.clean.toFixed(3)}, ${by} ${ce.spliced.toFixed(3)}, zero-ablated ${ce.zeroAblated.toFixed(3)}).`;
}

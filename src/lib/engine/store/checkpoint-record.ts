/**
 * A training checkpoint as read back from IndexedDB, checked before use: the record may come from an
 * older Loupe, from another tab's code, or from a store someone edited, and the trainer sizes GPU
 * buffers and writes Adam's moments by its numbers. Every length is checked against the shape the
 * config implies (W_enc d·n, b_enc n, W_dec n·d, b_dec d, JumpReLU's log θ n; Adam's moments the
 * same, in that order; a transcoder's W_skip d·d and its moments apart), every count against its
 * range, before a single element is read. What is wrong is named, with what to do.
 */
import { LoupeError } from '../errors';
import type { TrainCheckpoint } from '../train/training-run';

type Rec = Record<string, unknown>;

const ARCHS = ['topk', 'relu', 'jumprelu'];
const STATUSES = ['running', 'paused', 'stopped', 'done'];
const PHASES = ['writing', 'harvesting', 'training'];
/** Larger than any SAE a tab can train (d_sae·d_in floats must fit one GPU buffer); refuses made-up sizes. */
const MAX_ELEMENTS = 2 ** 31;

const isRec = (v: unknown): v is Rec => typeof v === 'object' && v !== null && !Array.isArray(v);
const isNat = (v: unknown, min = 0): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= min;
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
/** A stored value for a message, without calling anything on it (a record may hold a cycle or a toString that is not a function). */
const shown = (v: unknown) =>
	typeof v === 'string'
		? `"${v.slice(0, 40)}"`
		: typeof v === 'number'
			? Number.isFinite(v)
				? String(v)
				: 'not a finite number'
			: typeof v === 'boolean' || v === null
				? String(v)
				: `a value of type ${typeof v}`;

/**
 * The record as a TrainCheckpoint, or a LoupeError saying which part is damaged. `id` is the key it
 * was read under (for the message when the record has none).
 */
export function checkpointFromDb(record: unknown, id = 'a training run'): TrainCheckpoint {
	const bad = (what: string): never => {
		throw new LoupeError(
			'not-a-checkpoint',
			`The training run ${typeof (record as Rec)?.id === 'string' ? `"${(record as Rec).id}"` : id} stored in this browser is damaged: ${what}.`,
			'Delete it in the list of runs and train it again.'
		);
	};
	if (!isRec(record)) return bad('it is not a record');
	const r = record;
	if (typeof r.id !== 'string' || !r.id) bad('it has no id');
	const c = r.cfg;
	if (!isRec(c)) return bad('it has no settings (cfg)');
	for (const k of ['name', 'model', 'hook']) if (typeof c[k] !== 'string') bad(`its settings lack ${k}`);
	if (!ARCHS.includes(c.arch as string)) bad(`its architecture ${shown(c.arch)} is not one Loupe trains`);
	// Sizes the trainer allocates by must be positive; the corpus's counts and the checkpoint interval may be 0.
	for (const k of ['width', 'batch', 'tokens']) if (!isNat(c[k], 1)) bad(`its ${k} is not a positive whole number`);
	for (const k of ['stories', 'storyTokens', 'checkpointEvery']) if (!isNat(c[k])) bad(`its ${k} is not a whole number`);
	for (const k of ['lr', 'seed']) if (!isNum(c[k])) bad(`its ${k} is not a number`);
	if (c.arch === 'topk' && !(isNat(c.k, 1) && c.k <= (c.width as number))) bad('its k is not between 1 and the width');
	for (const k of ['auxCoeff', 'l1', 'l0', 'bandwidth', 'threshold'])
		if (c[k] !== undefined && !isNum(c[k])) bad(`its ${k} is not a number`);
	if (c.text !== undefined && typeof c.text !== 'string') bad('its corpus text is not text');
	if (c.kind !== undefined && c.kind !== 'sae' && c.kind !== 'transcoder')
		bad(`its kind ${shown(c.kind)} is neither an SAE nor a transcoder`);
	for (const k of ['skip', 'allLayers']) if (c[k] !== undefined && typeof c[k] !== 'boolean') bad(`its ${k} is not true or false`);
	if (c.group !== undefined && typeof c.group !== 'string') bad('its group is not text');
	if (!isNat(r.dIn, 1)) bad('its d_in is not a positive whole number');
	const d = r.dIn as number;
	const n = c.width as number;
	if (d * n > MAX_ELEMENTS) bad(`its size (${d} × ${n}) is larger than any SAE a tab can train`);
	if (!STATUSES.includes(r.status as string)) bad(`its status ${shown(r.status)} is unknown`);
	if (r.phase !== undefined && !PHASES.includes(r.phase as string)) bad(`its phase ${shown(r.phase)} is unknown`);
	if (!isNat(r.steps, 1)) bad('its number of steps is not a positive whole number');
	if (!isNat(r.step) || (r.step as number) > (r.steps as number)) bad(`its step ${shown(r.step)} is not between 0 and ${shown(r.steps)}`);

	// Parameters: null only before training began (a run paused while the model wrote its corpus).
	const lens = c.arch === 'jumprelu' ? [d * n, n, n * d, d, n] : [d * n, n, n * d, d];
	const names = ['wEnc', 'bEnc', 'wDec', 'bDec', 'logThreshold'];
	const floats = (v: unknown, len: number, what: string) => {
		if (!(v instanceof Float32Array)) bad(`its ${what} is not a Float32Array`);
		if ((v as Float32Array).length !== len) bad(`its ${what} holds ${(v as Float32Array).length} numbers, not ${len}`);
	};
	if (r.params === null) {
		if (isNat(r.step, 1)) bad('it has trained steps but no parameters');
	} else if (isRec(r.params)) lens.forEach((len, i) => floats((r.params as Rec)[names[i]], len, names[i]));
	else bad('it has no parameters');
	// A transcoder with a skip connection has W_skip [d_out, d_in] (d_out = d_in: hook_mlp_out is d_model wide), and nothing else has one.
	const skip = c.kind === 'transcoder' && c.skip === true;
	if (isRec(r.params)) {
		if (skip) floats(r.params.wSkip, d * d, 'wSkip');
		else if (r.params.wSkip !== undefined) bad('it has a skip connection (wSkip) its settings do not ask for');
	}

	const a = r.adam;
	if (!isRec(a) || !isNat(a.t) || !Array.isArray(a.m) || !Array.isArray(a.v)) return bad("its optimiser state (Adam's) is missing");
	// A run that has not stepped keeps no moments; one that has keeps one per parameter.
	if (a.m.length || a.v.length || (a.t as number) > 0) {
		if (a.m.length !== lens.length || a.v.length !== lens.length) bad(`its optimiser state has ${a.m.length} moments, not ${lens.length}`);
		lens.forEach(
			(len, i) => (floats((a.m as unknown[])[i], len, `Adam moment m${i}`), floats((a.v as unknown[])[i], len, `Adam moment v${i}`))
		);
	}

	if (!(r.fires instanceof Float64Array) || r.fires.length !== n) bad(`its firing counts do not hold one number per latent (${n})`);
	if (!isNum(r.sampled) || (r.sampled as number) < 0) bad('its count of sampled tokens is not a number');
	if (r.sinceFired !== undefined && !(r.sinceFired instanceof Uint32Array && r.sinceFired.length === n))
		bad('its dead-latent clock does not hold one count per latent');
	if (r.scale !== undefined && !(isNum(r.scale) && (r.scale as number) > 0)) bad('its activation scale is not a positive number');
	if (r.scaleOut !== undefined && !(isNum(r.scaleOut) && (r.scaleOut as number) > 0)) bad('its target scale is not a positive number');
	if (r.adamSkip !== undefined) {
		if (!skip || !isRec(r.adamSkip)) bad('it has optimiser state for a skip connection its settings do not ask for');
		const s = r.adamSkip as Rec;
		floats(s.m, d * d, 'Adam moment m of wSkip');
		floats(s.v, d * d, 'Adam moment v of wSkip');
	}
	// Points are charted and exported as they are: every value a number (NaN included: a diverged step is charted as a gap).
	const point = (p: unknown) => isRec(p) && isNat(p.step) && Object.values(p).every((v) => typeof v === 'number' || v === undefined);
	if (!Array.isArray(r.history) || !r.history.every(point)) bad('its metrics history is damaged');
	if (!Array.isArray(r.ce) || !r.ce.every(point)) bad('its CE-recovered history is damaged');
	if (r.corpus !== undefined && !(Array.isArray(r.corpus) && r.corpus.every((x) => Array.isArray(x) && x.every((t) => isNat(t)))))
		bad('its corpus is not lists of token ids');
	for (const k of ['createdAt', 'updatedAt']) if (typeof r[k] !== 'string') bad(`its ${k} is not a time`);
	return r as unknown as TrainCheckpoint;
}

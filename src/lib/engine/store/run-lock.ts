/**
 * One SAE training run at a time across this site's tabs, through the Web Locks API: two tabs
 * training at once would fight over the GPU and could write the same run's checkpoints. The run
 * holds the lock `loupe-training` while it trains; beside it, a second lock whose name carries who
 * holds the first (the run's name, hook, model, when it started), so another tab can say what holds
 * it (`navigator.locks.query()` lists names only). The browser lets go of both when the run ends or
 * its tab dies, so a closed tab never leaves training locked.
 */
import { LoupeError } from '../errors';

const LOCK = 'loupe-training';
const HOLDER = 'loupe-training-holder:';

/** What a tab tells the others about the run it trains. */
export interface TrainingHolder {
	name: string;
	model: string;
	hook: string;
	/** The run being resumed, if it is one. */
	runId: string | null;
	/** ISO time the run took the lock. */
	since: string;
}

/** Web Locks where the browser has them (pages and workers in secure contexts; not Node). */
function lockManager(): LockManager | null {
	return (globalThis.navigator as Navigator | undefined)?.locks ?? null;
}

/** The holder a lock name carries, or null when the name is not one of ours (or not valid JSON). */
export function holderFromLockName(name: string | undefined): TrainingHolder | null {
	if (!name?.startsWith(HOLDER)) return null;
	try {
		const h = JSON.parse(name.slice(HOLDER.length));
		return typeof h?.name === 'string' && typeof h?.since === 'string' ? (h as TrainingHolder) : null;
	} catch {
		return null;
	}
}

/** Who trains now in some tab of this site (this one included), or null when no run holds the lock. */
export async function trainingHolder(): Promise<TrainingHolder | null> {
	const locks = lockManager();
	if (!locks) return null;
	const { held = [] } = await locks.query();
	if (!held.some((l) => l.name === LOCK)) return null;
	for (const l of held) {
		const h = holderFromLockName(l.name);
		if (h) return h;
	}
	// Held, but its holder's name lock is not taken yet (the moment between the two requests).
	return { name: 'a training run', model: '', hook: '', runId: null, since: '' };
}

/** "“SAE blocks.2.hook_resid_pre” on stories260K at blocks.2.hook_resid_pre, since 15:04:05". */
export function describeHolder(h: TrainingHolder): string {
	const at = h.model ? ` on ${h.model}${h.hook ? ` at ${h.hook}` : ''}` : '';
	const since = h.since ? `, since ${new Date(h.since).toLocaleTimeString()}` : '';
	return `“${h.name}”${at}${since}`;
}

/**
 * Runs `work` holding the training lock, or refuses at once (a specific message naming the run that
 * holds it) when another tab trains. Without Web Locks (Node, old browsers) `work` just runs: the
 * tab's own model lock still keeps its runs apart.
 */
export async function withTrainingLock<T>(who: Omit<TrainingHolder, 'since'>, work: () => Promise<T>): Promise<T> {
	const locks = lockManager();
	if (!locks) return work();
	const holder: TrainingHolder = { ...who, since: new Date().toISOString() };
	const refused = Symbol('refused');
	const out = await locks.request(LOCK, { ifAvailable: true }, async (lock) => {
		if (!lock) return refused;
		return locks.request(HOLDER + JSON.stringify(holder), () => work());
	});
	if (out !== refused) return out as T;
	const h = await trainingHolder();
	throw new LoupeError(
		'training-busy',
		`Another tab of Loupe is training an SAE: ${h ? describeHolder(h) : 'a training run'}. One run trains at a time, so the two do not share the GPU or write the same checkpoints.`,
		'Wait until it finishes, or pause or stop it in its tab, then start here.'
	);
}

/**
 * The training lock as take-and-release, for code that already has its own try/finally: resolves
 * with the release once held, or throws withTrainingLock's refusal when another tab trains.
 */
export function takeTrainingLock(who: Omit<TrainingHolder, 'since'>): Promise<() => void> {
	return new Promise((held, refused) => {
		let release!: () => void;
		const done = new Promise<void>((r) => (release = r));
		withTrainingLock(who, () => (held(release), done)).catch(refused);
	});
}

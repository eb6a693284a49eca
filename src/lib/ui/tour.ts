/**
 * The guided tour's steps and whether it opens by itself: on a first visit, not once dismissed
 * (remembered in localStorage), never under automation (tests) unless the URL asks with ?tour=1.
 */
export const TOUR_KEY = 'loupe.tour.dismissed';

export interface TourStep {
	title: string;
	text: string;
	/** The data-testid of what the step points at, highlighted while it is shown. */
	target: string;
}

export const tourSteps: TourStep[] = [
	{
		title: '1 · Find a feature',
		text: 'Type a prompt. Each token is coloured by the SAE features that fire on it; the list ranks them. Click a token or a feature to open its card: what it responds to, what it promotes.',
		target: 'token-strip'
	},
	{
		title: '2 · Steer it',
		text: '“Steer with #…” on the card adds the feature to the model as it writes: the same seed, with and without it, side by side. Drag the strength to see how far it pushes.',
		target: 'steering-panel'
	},
	{
		title: '3 · Train your own',
		text: 'Train an SAE on this model in the browser, then open its features here. Nothing leaves this machine.',
		target: 'open-train'
	}
];

export function tourOpensByItself(params: URLSearchParams, storage: Pick<Storage, 'getItem'> | null, automated: boolean): boolean {
	if (params.get('tour') === '1') return true;
	if (params.get('tour') === '0' || automated) return false;
	try {
		return storage?.getItem(TOUR_KEY) !== '1';
	} catch {
		return false; // storage blocked: a tour that cannot be dismissed for good would come back on every visit
	}
}

// When the tour opens by itself: asked for in the URL, else on a first visit, never once dismissed
// or under automation (the e2e specs), and not when storage is blocked (it could not stay dismissed).
import { describe, expect, it } from 'vitest';
import { TOUR_KEY, tourOpensByItself } from '../../src/lib/ui/tour';

const store = (v: string | null) => ({ getItem: (k: string) => (k === TOUR_KEY ? v : null) });
const blocked = {
	getItem: () => {
		throw new DOMException('denied', 'SecurityError');
	}
};
const q = (s: string) => new URLSearchParams(s);

describe('tourOpensByItself', () => {
	it('opens on a first visit, not after it was dismissed', () => {
		expect(tourOpensByItself(q(''), store(null), false)).toBe(true);
		expect(tourOpensByItself(q(''), store('1'), false)).toBe(false);
	});
	it('never under automation unless ?tour=1; ?tour=0 keeps it closed', () => {
		expect(tourOpensByItself(q(''), store(null), true)).toBe(false);
		expect(tourOpensByItself(q('tour=1'), store('1'), true)).toBe(true);
		expect(tourOpensByItself(q('tour=0'), store(null), false)).toBe(false);
	});
	it('stays closed when storage is blocked', () => {
		expect(tourOpensByItself(q(''), blocked, false)).toBe(false);
		expect(tourOpensByItself(q(''), null, false)).toBe(true);
	});
});

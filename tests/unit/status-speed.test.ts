// The status line's speed for a model slower than a token a second: seconds per token, never "0.0 tokens/s".
import { describe, expect, it } from 'vitest';
import { statusSpeed } from '../../src/lib/ui/status-speed';

describe('status line speed', () => {
	it('reads tokens a second down to one, seconds per token below', () => {
		expect(statusSpeed(12.34)).toBe('12.3 tokens/s');
		expect(statusSpeed(1)).toBe('1.0 tokens/s');
		expect(statusSpeed(0.5)).toBe('2.0 s per token');
		expect(statusSpeed(1 / 77)).toBe('77 s per token');
		expect(statusSpeed(0.004)).toBe('250 s per token');
		expect(statusSpeed(0)).toBe('—');
	});
});

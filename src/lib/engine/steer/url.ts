/**
 * A steering setup in one URL parameter, so a link reproduces it:
 *   steer=394:add:8:n,12:clamp:0,vk3x9q2:add:4,7:orth:0:gen,9:cap:2.5:at3-5.9,bos
 * feature:method:value[:n][:scope], with method add, clamp, orth (orthogonal decomposition) or cap
 * (projection cap); n: the unit-normalised direction (add); scope (steer/scope.ts): prompt, gen,
 * from<N>, at<positions> (every position when absent). v<id> names a saved steering vector (any
 * method but clamp); `bos` steers special tokens too. Links written before methods and scopes
 * existed read as they did.
 */
import { formatScope, parseScope, type SteerScope } from './scope';
import type { SteerFeature, SteerMode, SteeringSetup } from './spec';

const modeOf: Record<string, SteerMode> = { add: 'add', clamp: 'clamp', orth: 'orthogonal', cap: 'cap' };
const tokenOf: Record<SteerMode, string> = { add: 'add', clamp: 'clamp', orthogonal: 'orth', cap: 'cap' };

export function parseSteer(s: string): SteeringSetup {
	const features: SteerFeature[] = [];
	let steerSpecial = false;
	for (const item of s
		.split(',')
		.map((x) => x.trim())
		.filter(Boolean)) {
		if (item === 'bos') {
			steerSpecial = true;
			continue;
		}
		const [f, m, value, ...flags] = item.split(':');
		const mode = Object.hasOwn(modeOf, m) ? modeOf[m] : undefined;
		const v = Number(value);
		if (!mode || value === undefined || value.trim() === '' || !Number.isFinite(v)) continue;
		// The optional fields: 'n', then a scope; an item with anything else in them is skipped.
		let normalize = false;
		let scope: SteerScope | null = null;
		let ok = flags.length <= 2;
		for (const flag of flags) {
			if (flag === 'n' && !normalize && !scope) normalize = true;
			else if (!scope && (scope = parseScope(flag))) continue;
			else ok = false;
		}
		if (!ok) continue;
		const entry = (feature: number, vector?: string): SteerFeature => ({
			feature,
			...(vector ? { vector } : {}),
			mode,
			value: v,
			normalize,
			...(scope ? { scope } : {})
		});
		if (/^v[0-9a-z]+$/.test(f)) {
			if (mode !== 'clamp') features.push(entry(-1, f.slice(1)));
			continue;
		}
		const feature = Number(f);
		if (!/^\d+$/.test(f) || !Number.isSafeInteger(feature)) continue;
		features.push(entry(feature));
	}
	return { features, steerSpecial };
}

export function formatSteer(setup: SteeringSetup): string {
	const items = setup.features.map((f) => {
		const scope = formatScope(f.scope);
		return `${f.vector ? `v${f.vector}` : f.feature}:${tokenOf[f.mode]}:${f.value}${f.normalize && f.mode === 'add' ? ':n' : ''}${scope ? `:${scope}` : ''}`;
	});
	if (setup.steerSpecial) items.push('bos');
	return items.join(',');
}

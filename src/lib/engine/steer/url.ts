/**
 * A steering setup in one URL parameter, so a link reproduces it:
 *   steer=394:add:8:n,12:clamp:0,vk3x9q2:add:4,bos
 * feature:mode:value[:n] (n: unit-normalised decoder row), v<id>:add:value[:n] for a saved steering
 * vector, and `bos` to steer special tokens too.
 */
import type { SteerFeature, SteeringSetup } from './spec';

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
		const [f, mode, value, flag] = item.split(':');
		const v = Number(value);
		if (/^v[0-9a-z]+$/.test(f)) {
			if (mode === 'add' && Number.isFinite(v)) features.push({ feature: -1, vector: f.slice(1), mode, value: v, normalize: flag === 'n' });
			continue;
		}
		const feature = Number(f);
		if (!Number.isInteger(feature) || feature < 0 || (mode !== 'add' && mode !== 'clamp') || !Number.isFinite(v)) continue;
		features.push({ feature, mode, value: v, normalize: flag === 'n' });
	}
	return { features, steerSpecial };
}

export function formatSteer(setup: SteeringSetup): string {
	const items = setup.features.map(
		(f) => `${f.vector ? `v${f.vector}` : f.feature}:${f.mode}:${f.value}${f.normalize && f.mode === 'add' ? ':n' : ''}`
	);
	if (setup.steerSpecial) items.push('bos');
	return items.join(',');
}

/**
 * Steering presets as files: a named `steer=` setup with the steering vectors it uses (vectors live
 * only in this browser otherwise), so a setup travels to another machine or class. The engine keeps
 * presets in IndexedDB (store/db.ts); this is the file format at the edge. Version 2 is version 1
 * whose `steer` may name methods and scopes (steer/url.ts); version 1 files read as they did.
 */
import { LoupeError } from '../errors';
import type { SteeringPreset } from '../store/db';
import { parseSteer } from './url';
import { vectorFromJson, vectorToJson, type SteeringVector } from './vectors';

/** The vector ids a preset's setup steers with. */
export function presetVectorIds(p: SteeringPreset): string[] {
	return parseSteer(p.steer).features.flatMap((f) => (f.vector ? [f.vector] : []));
}

/** The file version written; files up to it are read. */
export const PRESET_FILE_VERSION = 2;

export function presetFileText(p: SteeringPreset, vectors: SteeringVector[]): string {
	return JSON.stringify({ loupe: 'steering-preset', version: PRESET_FILE_VERSION, ...p, vectors: vectors.map(vectorToJson) }, null, 1);
}

/** Reads a preset file for model `model`; refuses other JSON, damaged vectors and other models' presets. */
export function parsePresetFile(text: string, model: string): { preset: SteeringPreset; vectors: SteeringVector[] } {
	let j: {
		loupe?: string;
		name?: string;
		version?: unknown;
		steer?: string;
		sae?: string | null;
		model?: string;
		vectors?: ReturnType<typeof vectorToJson>[];
	};
	try {
		j = JSON.parse(text);
	} catch {
		throw new LoupeError('not-found', 'This file is not JSON, so it is not a Loupe steering preset.', 'Choose a file saved with "Export".');
	}
	if (!j || typeof j !== 'object' || j.loupe !== 'steering-preset' || typeof j.name !== 'string' || typeof j.steer !== 'string')
		throw new LoupeError(
			'not-found',
			'This JSON file is not a Loupe steering preset (it has no "loupe": "steering-preset", name and steer).',
			'Choose a file saved with "Export".'
		);
	// A preset file is a stranger's JSON: every field is checked before it is used (the fuzz suite
	// found nulls and numbers here throwing TypeErrors).
	const damaged = (what: string) =>
		new LoupeError('not-found', `The preset file is damaged: its ${what}.`, 'Export it again from where it was made.');
	if (j.version != null && !(typeof j.version === 'number' && Number.isInteger(j.version) && j.version >= 1))
		throw damaged('"version" is not a version number');
	if (typeof j.version === 'number' && j.version > PRESET_FILE_VERSION)
		throw new LoupeError(
			'not-found',
			`This preset file is version ${j.version}, written by a newer Loupe; this one reads up to version ${PRESET_FILE_VERSION}.`,
			'Open it in a newer Loupe (reload the page to update), or export it again from there.'
		);
	if (j.model != null && typeof j.model !== 'string') throw damaged('"model" is not a model id');
	if (j.vectors != null && !Array.isArray(j.vectors)) throw damaged('"vectors" is not a list');
	if (j.sae != null && typeof j.sae !== 'string') throw damaged('"sae" is not an SAE id');
	if (j.model && j.model !== model)
		throw new LoupeError(
			'model-failed',
			`This preset was made for ${j.model}, not ${model}: its features and vectors would mean something else here.`,
			`Load ${j.model} first, then import it.`
		);
	let vectors: SteeringVector[];
	try {
		vectors = (j.vectors ?? []).map((v) => ({ ...vectorFromJson(v), model }));
	} catch (e) {
		throw new LoupeError('not-found', `The preset file is damaged: ${(e as Error).message}.`, 'Export it again from where it was made.');
	}
	return { preset: { model, name: j.name, steer: j.steer, sae: j.sae ?? null, createdAt: new Date().toISOString() }, vectors };
}

/**
 * Structure-aware JSON mutations: a valid document (a cfg.json, a tokenizer_config.json, a preset,
 * a safetensors header) with one value somewhere in it replaced by a hostile one, a key deleted or
 * added, or the text cut short. Hostile values include the ones JavaScript itself trips on: objects
 * whose `toString`/`valueOf` are not functions (`${x}`, String(x) and Number(x) throw on them),
 * `__proto__` keys, numbers past 2⁵³, deep nesting.
 */
import fc from 'fast-check';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

export const hostileJson: fc.Arbitrary<Json> = fc.oneof(
	fc.constantFrom<Json>(
		null,
		true,
		false,
		0,
		-1,
		1,
		0.5,
		-0.5,
		1e308,
		-1e308,
		2 ** 53 + 2,
		2 ** 31,
		10e9,
		'',
		' ',
		'x',
		'0',
		'-1',
		'NaN',
		'Infinity',
		'1e999',
		[],
		[null],
		[-1],
		[1, 2],
		[[[[[[[[[[[]]]]]]]]]]],
		{},
		{ toString: 1 },
		{ valueOf: 1, toString: 1 },
		{ toString: 'x' },
		JSON.parse('{"__proto__":{"x":1}}'),
		{ length: 1e9 },
		['toString'],
		'<img src=x onerror=alert(1)>',
		'\u0000',
		'\ud800'
	),
	fc.integer().map((n) => n as Json),
	fc.double({ noNaN: true, noDefaultInfinity: true }).map((n) => n as Json),
	fc.string({ maxLength: 20 }).map((s) => s as Json),
	fc.jsonValue({ maxDepth: 2 }) as fc.Arbitrary<Json>
);

/** Every path (list of keys) to a value inside `doc`, the root included. */
function paths(doc: Json, at: (string | number)[] = [], out: (string | number)[][] = []): (string | number)[][] {
	out.push(at);
	if (Array.isArray(doc)) doc.slice(0, 8).forEach((v, i) => paths(v, [...at, i], out));
	else if (doc && typeof doc === 'object') for (const k of Object.keys(doc)) paths(doc[k], [...at, k], out);
	return out;
}

function setAt(doc: Json, path: (string | number)[], f: (parent: Record<string, Json> | Json[], key: string | number) => void): Json {
	const copy = structuredClone(doc);
	if (path.length === 0) return copy;
	let p: Json = copy;
	for (const k of path.slice(0, -1)) p = (p as Record<string, Json>)[k as string];
	f(p as Record<string, Json>, path[path.length - 1]);
	return copy;
}

export interface MutatedText {
	text: string;
	how: string;
}

/** One mutation of `doc` per case, as text; `extraValues` are format-specific values to try. */
export function mutatedJson(document: unknown, extras: unknown[] = []): fc.Arbitrary<MutatedText> {
	const doc = document as Json; // any JSON-serialisable value: the tests' documents are written as literals
	const extraValues = extras as Json[];
	const all = paths(doc);
	const value = extraValues.length ? fc.oneof(hostileJson, fc.constantFrom(...extraValues)) : hostileJson;
	const text = JSON.stringify(doc);
	return fc.oneof(
		fc.constant({ text, how: 'the valid document' }),
		fc.tuple(fc.constantFrom(...all), value).map(([p, v]) => {
			if (p.length === 0) return { text: JSON.stringify(v), how: `replaced by ${JSON.stringify(v)}` };
			const out = setAt(doc, p, (parent, k) => ((parent as Record<string, Json>)[k as string] = v));
			return { text: JSON.stringify(out), how: `${p.join('.')} set to ${JSON.stringify(v)}` };
		}),
		fc.constantFrom(...all.filter((p) => p.length > 0)).map((p) => {
			const out = setAt(doc, p, (parent, k) => (Array.isArray(parent) ? parent.splice(k as number, 1) : delete parent[k as string]));
			return { text: JSON.stringify(out), how: `${p.join('.')} deleted` };
		}),
		fc
			.tuple(
				fc.constantFrom(...all),
				fc.oneof(fc.constantFrom('__proto__', 'constructor', 'toString', 'valueOf', 'length'), fc.string({ maxLength: 8 })),
				value
			)
			.map(([p, key, v]) => {
				const out = setAt(doc, p.length ? p : [], () => {});
				let target = out;
				for (const k of p) target = (target as Record<string, Json>)[k as string];
				// defineProperty, so that "__proto__" becomes an own key as JSON.parse makes it, not the prototype.
				if (target && typeof target === 'object' && !Array.isArray(target))
					Object.defineProperty(target, key, { value: v, enumerable: true, writable: true, configurable: true });
				return { text: JSON.stringify(out), how: `key ${key} = ${JSON.stringify(v)} added at ${p.join('.') || 'the root'}` };
			}),
		fc.nat({ max: Math.max(0, text.length - 1) }).map((n) => ({ text: text.slice(0, n), how: `cut to ${n} characters` })),
		fc.string({ maxLength: 64 }).map((s) => ({ text: s, how: 'a random string' })),
		fc.jsonValue({ maxDepth: 3 }).map((v) => ({ text: JSON.stringify(v) ?? 'null', how: 'random JSON' }))
	);
}

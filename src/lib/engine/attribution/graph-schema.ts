/**
 * A validator for Neuronpedia's attribution-graph JSON, written from its schema
 * (`apps/webapp/app/api/graph/graph-schema.json` in hijohnnylin/neuronpedia, draft-07): the
 * required keys and the types the schema gives each key it names. Keys the schema does not name
 * are allowed (it sets no additionalProperties), so Loupe's `input` and `bias` on nodes are valid.
 * Returns every problem found, each with its JSON path, so a bad file is refused with all of them.
 */

type Kind = 'string' | 'number' | 'integer' | 'null' | 'object' | 'array' | 'boolean';
interface Rule {
	type: Kind[];
	required?: string[];
	properties?: Record<string, Rule>;
	items?: Rule;
	/** Every value of the object follows this rule (JSON Schema's additionalProperties as a schema). */
	values?: Rule;
	minItems?: number;
	maxItems?: number;
}

const t = (...type: Kind[]): Rule => ({ type });
const str = t('string');
const num = t('number');
const obj = (properties: Record<string, Rule>, required: string[] = []): Rule => ({ type: ['object'], properties, required });
const arr = (items?: Rule, minItems?: number, maxItems?: number): Rule => ({ type: ['array'], items, minItems, maxItems });

const contributors = (n: number) => arr(arr(undefined, n, n));

const nodeRule = obj(
	{
		node_id: str,
		feature: t('integer', 'null'),
		layer: t('string', 'integer'),
		ctx_idx: t('integer'),
		feature_type: str,
		jsNodeId: str,
		clerp: str,
		influence: t('number', 'null'),
		activation: t('number', 'null'),
		qk_tracing_results: obj(
			{
				pair_wise_contributors: contributors(3),
				top_q_marginal_contributors: contributors(2),
				top_k_marginal_contributors: contributors(2)
			},
			['pair_wise_contributors', 'top_q_marginal_contributors', 'top_k_marginal_contributors']
		)
	},
	['node_id', 'feature', 'layer', 'ctx_idx', 'feature_type', 'jsNodeId', 'clerp']
);

export const graphSchema: Rule = obj(
	{
		metadata: obj(
			{
				slug: str,
				scan: str,
				prompt_tokens: arr(str),
				prompt: str,
				feature_details: obj({ feature_json_base_url: str, neuronpedia_source_set: str, neuronpedia_lorsa_source_set: str }),
				node_threshold: num,
				info: obj({
					description: str,
					creator_name: str,
					creator_url: str,
					source_urls: arr(),
					generator: obj({ name: str, version: str, url: str, email: str }),
					create_time_ms: num
				}),
				generation_settings: obj({
					max_n_logits: t('integer'),
					desired_logit_prob: num,
					batch_size: t('integer'),
					max_feature_nodes: t('integer')
				}),
				pruning_settings: obj({ node_threshold: num, edge_threshold: num })
			},
			['slug', 'scan', 'prompt_tokens', 'prompt']
		),
		qParams: obj({ pinnedIds: arr(str), supernodes: arr(), linkType: str, clickedId: str, sg_pos: str }),
		nodes: arr(nodeRule),
		links: arr(obj({ source: str, target: str, weight: num }, ['source', 'target', 'weight'])),
		qk_only_nodes: {
			type: ['object'],
			values: obj(
				{
					node_id: str,
					feature: t('integer', 'null'),
					layer: t('string', 'integer'),
					ctx_idx: t('integer'),
					feature_type: str,
					jsNodeId: str,
					clerp: str,
					activation: t('number', 'null')
				},
				['node_id', 'feature_type', 'layer', 'ctx_idx', 'jsNodeId', 'clerp']
			)
		}
	},
	['metadata', 'qParams', 'nodes', 'links']
);

function kindOf(v: unknown): Kind[] {
	if (v === null) return ['null'];
	if (Array.isArray(v)) return ['array'];
	if (typeof v === 'number') return Number.isInteger(v) ? ['number', 'integer'] : ['number'];
	if (typeof v === 'string' || typeof v === 'boolean' || typeof v === 'object') return [typeof v as Kind];
	return [];
}

/** Every way `value` breaks the rule, as "path: what is wrong"; at most `limit` of them. */
export function validateGraphJson(value: unknown, rule: Rule = graphSchema, path = '$', out: string[] = [], limit = 20): string[] {
	if (out.length >= limit) return out;
	const kinds = kindOf(value);
	if (!rule.type.some((k) => kinds.includes(k))) {
		out.push(`${path}: expected ${rule.type.join(' or ')}, found ${kinds[kinds.length - 1] ?? typeof value}`);
		return out;
	}
	if (kinds.includes('object') && value !== null) {
		const o = value as Record<string, unknown>;
		for (const key of rule.required ?? []) if (!(key in o)) out.push(`${path}: missing required key "${key}"`);
		for (const [key, sub] of Object.entries(rule.properties ?? {}))
			if (key in o) validateGraphJson(o[key], sub, `${path}.${key}`, out, limit);
		if (rule.values) for (const [key, v] of Object.entries(o)) validateGraphJson(v, rule.values, `${path}.${key}`, out, limit);
	}
	if (Array.isArray(value)) {
		if (rule.minItems !== undefined && value.length < rule.minItems)
			out.push(`${path}: has ${value.length} items, at least ${rule.minItems} needed`);
		if (rule.maxItems !== undefined && value.length > rule.maxItems)
			out.push(`${path}: has ${value.length} items, at most ${rule.maxItems} allowed`);
		if (rule.items)
			for (let i = 0; i < value.length && out.length < limit; i++) validateGraphJson(value[i], rule.items, `${path}[${i}]`, out, limit);
	}
	return out.slice(0, limit);
}

/**
 * Which logits become target nodes, as circuit-tracer's `compute_salient_logits` picks them: the
 * fewest top tokens whose probabilities add up to `desiredLogitProb` (0.95), at most `maxNLogits`
 * (10), at the last position. Each target reads the demeaned unembedding row
 * W_U[t] − mean_v W_U[v], so a logit node's input is logit_t − mean_v logit_v: the part of the
 * logit that changes the softmax (a shift common to every token changes nothing).
 */
export interface SalientLogit {
	token: number;
	prob: number;
	/** The demeaned logit logit_t − mean_v logit_v: what the node's incoming edges add up to. */
	demeanedLogit: number;
	/** W_U[t] − mean_v W_U[v], [dim]. */
	vector: Float64Array;
}

export function salientLogits(
	logits: ArrayLike<number>,
	classifier: Float32Array,
	dim: number,
	maxNLogits = 10,
	desiredLogitProb = 0.95
): SalientLogit[] {
	const V = logits.length;
	let max = -Infinity;
	for (let v = 0; v < V; v++) max = Math.max(max, logits[v]);
	let sum = 0;
	let mean = 0;
	for (let v = 0; v < V; v++) {
		sum += Math.exp(logits[v] - max);
		mean += logits[v] / V;
	}
	const order = Array.from({ length: V }, (_, v) => v).sort((a, b) => logits[b] - logits[a] || a - b);
	const top = order.slice(0, Math.min(maxNLogits, V));
	// circuit-tracer: searchsorted(cumsum(top_p), p) + 1 — keep up to and including the first token
	// at which the cumulative probability reaches p.
	let cum = 0;
	let keep = top.length;
	for (let i = 0; i < top.length; i++) {
		cum += Math.exp(logits[top[i]] - max) / sum;
		if (cum >= desiredLogitProb) {
			keep = i + 1;
			break;
		}
	}
	const meanRow = new Float64Array(dim);
	for (let v = 0; v < V; v++) for (let d = 0; d < dim; d++) meanRow[d] += classifier[v * dim + d] / V;
	return top.slice(0, keep).map((token) => ({
		token,
		prob: Math.exp(logits[token] - max) / sum,
		demeanedLogit: logits[token] - mean,
		vector: Float64Array.from(meanRow, (m, d) => classifier[token * dim + d] - m)
	}));
}

/**
 * The engine's `graph(op, req)` with its types kept: comlink's Remote drops a method's generic
 * parameter, so the page calls through this, which says the reply's type by the op's name again.
 */
import type { EngineProxy } from '$lib/engine/client';
import type { GraphOp, GraphProgress, GraphReplies, GraphRequests, Result } from '$lib/engine/index';

export type GraphCall = <K extends GraphOp>(
	op: K,
	req: GraphRequests[K],
	onProgress?: (p: GraphProgress) => void
) => Promise<Result<GraphReplies[K]>>;

export const graphCall =
	(engine: EngineProxy): GraphCall =>
	(op, req, onProgress) =>
		engine.graph(op, req, onProgress) as never;

/**
 * Saved attribution graphs, in IndexedDB: each record the unpruned graph as Neuronpedia's graph JSON
 * (the same text Export writes, so a saved graph opens as an imported one would) and the view it
 * was saved with (thresholds, pinned nodes, supernodes). A database of its own ('loupe-graphs'),
 * so that graphs, which can be large, never take part in the main database's upgrades (store/db.ts).
 */
import { openDB, type DBSchema, type IDBPDatabase } from 'idb';

/** The view state a graph is saved and linked with. */
export interface GraphViewState {
	nodeThreshold: number;
	edgeThreshold: number;
	pinned: string[];
	/** [name, ...node ids], as Neuronpedia's qParams.supernodes. */
	supernodes: string[][];
}

export interface SavedGraph {
	id: string;
	name: string;
	model: string;
	prompt: string;
	createdAt: string;
	view: GraphViewState;
	nodes: number;
	links: number;
	/** Neuronpedia graph JSON, unpruned. */
	json: string;
}

export type SavedGraphSummary = Omit<SavedGraph, 'json'> & { bytes: number };

interface GraphsDB extends DBSchema {
	graphs: { key: string; value: SavedGraph; indexes: { byModel: string } };
}

let dbPromise: Promise<IDBPDatabase<GraphsDB>> | null = null;

function db(): Promise<IDBPDatabase<GraphsDB>> {
	dbPromise ??= openDB<GraphsDB>('loupe-graphs', 1, {
		upgrade(d) {
			d.createObjectStore('graphs', { keyPath: 'id' }).createIndex('byModel', 'model');
		}
	});
	return dbPromise;
}

export async function saveGraph(g: SavedGraph) {
	await (await db()).put('graphs', g);
}

export async function getGraph(id: string): Promise<SavedGraph | undefined> {
	return (await db()).get('graphs', id);
}

/** Every saved graph, newest first, without its JSON. */
export async function listGraphs(): Promise<SavedGraphSummary[]> {
	const all = await (await db()).getAll('graphs');
	return all.map(({ json, ...rest }) => ({ ...rest, bytes: json.length })).sort((a, b) => b.createdAt.localeCompare(a.createdAt));
}

export async function deleteGraph(id: string) {
	await (await db()).delete('graphs', id);
}

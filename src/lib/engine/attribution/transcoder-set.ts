/**
 * The transcoders an attribution graph runs with, one per layer, from wherever they come: folders
 * the user dropped or picked (SAELens `cfg.json` + `sae_weights.safetensors`, Gemma Scope 2
 * `config.json` + `params.safetensors`; one folder per layer), or the defaults the app ships for
 * stories260K (`bundled/loupe/stories260K-transcoders/resolve/main/blocks.L.hook_mlp_in/`, SAELens
 * layout). Each goes through the SAE readers (sae/load.ts) and `transcoderFromSae`, so what the
 * explorer refuses is refused here, in the same words.
 */
import { LoupeError } from '../errors';
import { readSaeFiles, type SaeFile } from '../sae/load';
import { fetchModelFile, hubFileUrl, type DownloadProgress } from '../store/model-cache';
import { transcoderFromSae } from './from-sae';
import type { Transcoder } from './transcoder';

/** A file with the path it had in the folder it came from ("tc/blocks.0.hook_mlp_in/cfg.json"). */
export interface PathedFile {
	path: string;
	file: Blob;
}

export interface TranscoderSet {
	transcoders: Transcoder[];
	/** For people: "Loupe's default transcoders for stories260K", "5 folders you dropped". */
	source: string;
	/** For the graph's metadata (`scan`) and the labels' key. */
	id: string;
}

export const BUNDLED_TRANSCODER_REPO = 'loupe/stories260K-transcoders';
/** The models the app ships transcoders for. */
export const BUNDLED_TRANSCODER_MODELS = ['stories260K'];

export const HOW_TO_GET_TRANSCODERS =
	'Drop transcoder folders on the page, one per layer (SAELens: cfg.json + sae_weights.safetensors; Gemma Scope 2: config.json + params.safetensors), or train them on the Train page (hook blocks.L.hook_mlp_in → hook_mlp_out) and export them.';

const dirOf = (p: string) => p.split('/').slice(0, -1).join('/');
const baseOf = (p: string) => p.split('/').pop() ?? p;

/** Groups files by folder, reads each folder as one transcoder, and checks the set covers every layer once. */
export async function transcodersFromFiles(files: PathedFile[], nLayers: number): Promise<TranscoderSet> {
	const folders = new Map<string, PathedFile[]>();
	for (const f of files) {
		const name = baseOf(f.path);
		if (name.startsWith('.')) continue; // .DS_Store and the like
		const d = dirOf(f.path);
		folders.set(d, [...(folders.get(d) ?? []), f]);
	}
	const configs = (fs: PathedFile[]) => fs.filter((f) => ['cfg.json', 'config.json'].includes(baseOf(f.path))).length;
	for (const [d, fs] of folders)
		if (configs(fs) > 1)
			throw new LoupeError(
				'not-an-sae',
				`${configs(fs)} transcoder configs arrived in ${d ? `the folder "${d}"` : 'one list, with no folders'}, so Loupe cannot tell which weights belong to which.`,
				'Drop (or pick with the folder picker) the folders themselves, one folder per layer, each with its config and weights.'
			);
	const read: Transcoder[] = [];
	for (const [d, fs] of folders) {
		if (!configs(fs)) continue; // a parent folder with no files of its own, a README
		const sae: SaeFile[] = await Promise.all(fs.map(async (f) => ({ name: f.path, buffer: await f.file.arrayBuffer() })));
		const { cfg, weights } = readSaeFiles(sae);
		const t = transcoderFromSae(cfg, weights);
		t.name = t.name || d;
		read.push(t);
	}
	if (!read.length)
		throw new LoupeError(
			'not-an-sae',
			`None of these files is a transcoder config (${files
				.slice(0, 6)
				.map((f) => baseOf(f.path))
				.join(', ')}${files.length > 6 ? ', …' : ''}).`,
			HOW_TO_GET_TRANSCODERS
		);
	return {
		transcoders: checkLayers(read, nLayers),
		source: `${read.length} transcoder folder${read.length === 1 ? '' : 's'} you gave`,
		id: setId(read)
	};
}

/** The bundled defaults, or a worded 'not-found' saying they are not in this build and how to get some. */
export async function bundledTranscoders(
	hub: string,
	model: { id: string; nLayers: number },
	onProgress: (p: DownloadProgress) => void
): Promise<TranscoderSet> {
	if (!BUNDLED_TRANSCODER_MODELS.includes(model.id))
		throw new LoupeError('not-found', `Loupe ships no transcoders for ${model.id}.`, HOW_TO_GET_TRANSCODERS);
	const read: Transcoder[] = [];
	for (let l = 0; l < model.nLayers; l++) {
		const folder = `blocks.${l}.hook_mlp_in`;
		const get = async (file: string) => {
			try {
				return {
					name: `${folder}/${file}`,
					buffer: (await fetchModelFile(hubFileUrl(hub, BUNDLED_TRANSCODER_REPO, 'main', `${folder}/${file}`), onProgress)).buffer
				};
			} catch (e) {
				if (e instanceof LoupeError && e.code === 'not-found')
					throw new LoupeError(
						'not-found',
						`Loupe's default transcoders for ${model.id} are not in this build (no ${folder}/${file}).`,
						`${HOW_TO_GET_TRANSCODERS} A build made after npm run make-defaults ships them.`
					);
				throw e;
			}
		};
		const files = [await get('cfg.json'), await get('sae_weights.safetensors')];
		const { cfg, weights } = readSaeFiles(files);
		read.push(transcoderFromSae(cfg, weights));
	}
	return {
		transcoders: checkLayers(read, model.nLayers),
		source: `Loupe's default transcoders for ${model.id}`,
		id: `${BUNDLED_TRANSCODER_REPO}`
	};
}

function checkLayers(read: Transcoder[], nLayers: number): Transcoder[] {
	const byLayer = new Map<number, Transcoder>();
	for (const t of read) {
		const other = byLayer.get(t.layer);
		if (other)
			throw new LoupeError(
				'sae-mismatch',
				`Two transcoders replace layer ${t.layer}'s MLP (${other.name} and ${t.name}).`,
				'Give one transcoder per layer.'
			);
		byLayer.set(t.layer, t);
	}
	const missing = Array.from({ length: nLayers }, (_, l) => l).filter((l) => !byLayer.has(l));
	const extra = [...byLayer.keys()].filter((l) => l >= nLayers);
	if (extra.length)
		throw new LoupeError(
			'sae-mismatch',
			`A transcoder is for layer ${extra[0]}, but the model has ${nLayers} layers (0–${nLayers - 1}).`,
			'Give transcoders made for this model.'
		);
	if (missing.length)
		throw new LoupeError(
			'sae-mismatch',
			`The graph replaces every MLP, and layer${missing.length > 1 ? 's' : ''} ${missing.join(', ')} ha${missing.length > 1 ? 've' : 's'} no transcoder (got ${read.length} of ${nLayers}).`,
			`Add the missing layer${missing.length > 1 ? 's' : ''}: ${HOW_TO_GET_TRANSCODERS}`
		);
	return [...byLayer.values()].sort((a, b) => a.layer - b.layer);
}

const setId = (ts: Transcoder[]) => ts.map((t) => t.name ?? `L${t.layer}`).join('|');

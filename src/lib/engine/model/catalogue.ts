/**
 * Models Loupe knows how to fetch from the Hub (or a mirror with the same layout). Plain data:
 * add an entry to offer a model. `format` says which loader reads it.
 */
export interface CatalogueModel {
	id: string; // the `model=` URL parameter
	name: string;
	description: string;
	format: 'llama2c';
	repo: string;
	revision: string;
	files: { checkpoint: string; tokenizer: string };
	bytes: number; // download size, for the picker
	license: string;
}

export const catalogue: CatalogueModel[] = [
	{
		id: 'stories260K',
		name: 'stories260K',
		description: 'A 260K-parameter Llama trained on TinyStories (llama2.c). 1 MB: loads in a second anywhere.',
		format: 'llama2c',
		repo: 'karpathy/tinyllamas',
		revision: 'main',
		files: { checkpoint: 'stories260K/stories260K.bin', tokenizer: 'stories260K/tok512.bin' },
		bytes: 1_056_540 + 6_227,
		license: 'MIT'
	}
];

export const defaultModelId = 'stories260K';
export const defaultHub = 'https://huggingface.co';

export function findModel(id: string): CatalogueModel | undefined {
	return catalogue.find((m) => m.id === id);
}

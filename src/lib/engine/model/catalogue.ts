/**
 * Models Loupe knows how to fetch from the Hub (or a mirror with the same layout). Plain data:
 * add an entry to offer a model. `format` says which loader reads it:
 *  - 'llama2c': a llama2.c checkpoint + tokenizer, turned into ONNX by Loupe itself;
 *  - 'onnx': an exported ONNX decoder (transformers.js layout: graphs under `onnx/`, tokenizer at
 *    the root); which precision variants exist is asked of the Hub's tree API, and graph surgery
 *    puts the hook points in.
 */
export interface OnnxVariant {
	/** File name under `onnxFolder`. */
	file: string;
	dtype: 'fp32' | 'fp16' | 'q4f16' | 'int8' | 'q4';
}

/**
 * Variants of one model known to give wrong output where they would otherwise be picked (an
 * overflow in a kernel, a broken export): the chooser skips them and says why, whatever the
 * adapter offers.
 */
export interface PrecisionException {
	dtypes: OnnxVariant['dtype'][];
	/** Why, in words for people: the precision's reason shows it in the status line. */
	reason: string;
}

interface CatalogueBase {
	id: string; // the `model=` URL parameter
	name: string;
	description: string;
	repo: string;
	revision: string;
	bytes: number; // approximate download size (of the variant Loupe picks), for the picker
	license: string;
	/** SAE releases that fit this model (see sae/catalogue.ts). */
	saeReleases: string[];
	/**
	 * The app ships this model's files under static/bundled/ in the Hub's layout
	 * ({repo}/resolve/{revision}/{path}, byte-identical to the Hub's), so it opens from the app's
	 * own origin with no network: always for the default hub, and when a named hub is unreachable.
	 */
	bundled?: boolean;
}

export interface Llama2cModel extends CatalogueBase {
	format: 'llama2c';
	files: { checkpoint: string; tokenizer: string };
}

export interface OnnxModel extends CatalogueBase {
	format: 'onnx';
	onnxFolder: string;
	/** In order of preference; the Hub's file list says which exist. */
	variants: OnnxVariant[];
	/** Instruction-tuned: prompts go through the chat template. */
	chat: boolean;
	/** Variants not to pick for this model, with the reason. */
	precisionExceptions?: PrecisionException[];
}

export type CatalogueModel = Llama2cModel | OnnxModel;

/** fp32 first: Loupe's kernels read an fp32 residual stream, and every WebGPU adapter runs fp32. */
const standardVariants: OnnxVariant[] = [
	{ file: 'model.onnx', dtype: 'fp32' },
	{ file: 'model_fp16.onnx', dtype: 'fp16' },
	{ file: 'model_q4f16.onnx', dtype: 'q4f16' },
	{ file: 'model_quantized.onnx', dtype: 'int8' },
	{ file: 'model_int8.onnx', dtype: 'int8' },
	{ file: 'decoder_model.onnx', dtype: 'fp32' }
];

export const catalogue: CatalogueModel[] = [
	{
		id: 'stories260K',
		name: 'stories260K',
		description:
			'A 260K-parameter Llama trained on TinyStories (llama2.c). 1 MB, ships with Loupe (works offline), with an SAE at every residual hook.',
		format: 'llama2c',
		repo: 'karpathy/tinyllamas',
		revision: 'main',
		files: { checkpoint: 'stories260K/stories260K.bin', tokenizer: 'stories260K/tok512.bin' },
		bytes: 1_056_540 + 6_227,
		license: 'MIT',
		saeReleases: ['loupe-stories260K-res'],
		bundled: true
	},
	{
		id: 'stories15M',
		name: 'stories15M',
		description: 'A 15M-parameter Llama trained on TinyStories (llama2.c), as an ONNX export.',
		format: 'onnx',
		repo: 'Xenova/llama2.c-stories15M',
		revision: 'main',
		onnxFolder: 'onnx',
		variants: standardVariants,
		chat: false,
		bytes: 60_000_000,
		license: 'MIT',
		saeReleases: []
	},
	{
		id: 'gpt2-small',
		name: 'GPT-2 small',
		description: "OpenAI's GPT-2 (124M), the model most SAE research started on. Pairs with the gpt2-small-res-jb SAEs.",
		format: 'onnx',
		repo: 'Xenova/gpt2',
		revision: 'main',
		onnxFolder: 'onnx',
		variants: standardVariants,
		chat: false,
		bytes: 500_000_000,
		license: 'MIT',
		saeReleases: ['gpt2-small-res-jb']
	},
	{
		id: 'pythia-70m-deduped',
		name: 'Pythia-70m (deduped)',
		description: "EleutherAI's Pythia-70m: a small GPT-NeoX model with parallel attention and MLP.",
		format: 'onnx',
		repo: 'Xenova/pythia-70m-deduped',
		revision: 'main',
		onnxFolder: 'onnx',
		variants: standardVariants,
		chat: false,
		bytes: 280_000_000,
		license: 'Apache-2.0',
		saeReleases: []
	},
	{
		id: 'gemma-3-270m-it',
		name: 'Gemma 3 270M (instruction-tuned)',
		description: "Google's Gemma 3 270M, chat-tuned. Pairs with Gemma Scope 2. Weights in a sidecar file (external data).",
		format: 'onnx',
		repo: 'onnx-community/gemma-3-270m-it-ONNX',
		revision: 'main',
		onnxFolder: 'onnx',
		variants: standardVariants,
		chat: true,
		precisionExceptions: [
			{
				dtypes: ['fp16', 'q4f16'],
				reason:
					"Gemma 3 270M's fp16 and q4f16 exports overflow in onnxruntime-web's WebGPU kernels and give invalid output (onnxruntime issue 26732); its fp32 export works."
			}
		],
		bytes: 1_100_000_000,
		license: 'Gemma',
		saeReleases: ['gemma-scope-2-270m-it']
	}
];

export const defaultModelId = 'stories260K';
export const defaultHub = 'https://huggingface.co';

export function findModel(id: string): CatalogueModel | undefined {
	return catalogue.find((m) => m.id === id);
}

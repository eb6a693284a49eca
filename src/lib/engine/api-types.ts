/**
 * The types of the Engine's API (index.ts), in one place: what the UI receives and passes. Each is
 * defined beside the code that produces it; this file only gathers them.
 */
export type { Result } from './errors';
export type { EngineEvent, LoadFromHub, ModelInfo } from './model/session';
export type { EngineStatus, BackendPreference, BackendRequest } from './model/backend';
export type { AnalyzedToken, CorpusSummary, FeatureDetails, FeatureOnText, SaeFromHub, SaeInfo, TopExample } from './sae/explorer';
export type { CorpusProgress, CorpusSpec } from './model/corpus-contexts';
export type { VectorSummary } from './steer/steering';
export type { BenchName } from './bench/benchmarks';
export type { BenchLine } from './bench/bench-line';
export type { GenerateResult, TokenEvent } from './model/generate';
export type { SamplingSettings } from './sample/sampler';
export type { SteeringSetup } from './steer/spec';
export type { RankedItem } from './sae/features';
export type { ReconMetrics } from './sae/reconstruction';
export type { TrainConfig, TrainProgress, TrainRunSummary } from './train/training-run';
export type { TrainRates, CorpusSize } from './train/estimate';
export type { FeatureLabel, SteeringPreset } from './store/db';
export type { CachedFile, DownloadProgress } from './store/model-cache';
export type { StoredItem } from './store/storage';
export type * from './attribution/service-api';

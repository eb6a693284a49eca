/// <reference lib="webworker" />
// The engine's dedicated Web Worker: all model, GPU and storage work happens here.
import * as Comlink from 'comlink';
import { Engine } from './index';

const engine = new Engine();
// For people and test scripts driving the app from DevTools or Playwright's worker.evaluate().
(self as unknown as { loupeEngine: Engine }).loupeEngine = engine;
Comlink.expose(engine);

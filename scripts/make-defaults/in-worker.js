// Runs inside the app's engine worker (Playwright's worker.evaluate, as text: tsx would add helpers
// the worker lacks). Trains one SAE, exports it, opens it and runs the corpus through it, and
// returns everything as plain data (the weights as base64).
async ({ cfg, corpusName }) => {
	const e = self.loupeEngine;
	const b64 = (u) => {
		let s = '';
		for (let i = 0; i < u.length; i += 0x8000) s += String.fromCharCode(...u.subarray(i, i + 0x8000));
		return btoa(s);
	};
	const must = (r) => {
		if (!r.ok) throw new Error(r.error.message);
		return r.value;
	};
	// When each phase began (seconds from the start), for the log: where the time goes.
	const t0 = performance.now();
	const phases = [];
	const mark = (name) => phases.push([name, Math.round((performance.now() - t0) / 100) / 10]);
	const run = must(
		await e.train(cfg, null, (p) => {
			if (phases[phases.length - 1]?.[0] !== p.phase) mark(p.phase);
		})
	);
	mark('exporting');
	const files = must(await e.exportTrainedSae(run.id));
	must(await e.openTrainedSae(run.id));
	mark('corpus run');
	must(await e.runCorpus({ name: corpusName, text: cfg.text }, () => {}));
	mark('end');
	// The corpus run the explorer now holds (a private field of the engine, reachable from here).
	const corpusRun = e.session.current.sae.run;
	const st = corpusRun.stats;
	await e.deleteTrainingRun(run.id); // its checkpoints are not needed once exported
	return {
		cfgJson: files.cfgJson,
		safetensors: b64(files.safetensors),
		sparsity: b64(files.sparsity),
		metrics: { explainedVariance: run.last.explainedVariance, l0: run.last.l0, dead: run.last.dead, ce: run.ce },
		contexts: corpusRun.contexts,
		phases,
		stats: {
			dSae: st.dSae,
			tokens: st.tokens,
			fires: Array.from(st.fires),
			maxAct: Array.from(st.maxAct),
			hist: Array.from(st.hist),
			topVal: Array.from(st.topVal),
			topRef: Array.from(st.topRef)
		}
	};
};

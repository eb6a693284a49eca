// Runs inside the app's engine worker (as in-worker.js, as text). Trains one all-layers transcoder
// run, exports each layer's SAELens files, and returns them with the run's figures as plain data.
async ({ cfg }) => {
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
	const t0 = performance.now();
	const phases = [];
	const mark = (name) => phases.push([name, Math.round((performance.now() - t0) / 100) / 10]);
	let layerEv = null;
	const run = must(
		await e.train(cfg, null, (p) => {
			if (phases[phases.length - 1]?.[0] !== p.phase) mark(p.phase);
			if (p.phase === 'training' && p.done % 25 === 0)
				console.log(`[make-defaults] step ${p.done} of ${p.total}${p.ce ? `, CE recovered ${(100 * p.ce.recovered).toFixed(1)} %` : ''}`);
			if (p.layerEv) layerEv = p.layerEv;
		})
	);
	mark('exporting');
	const records = (await e.trainingRuns()).filter((r) => r.group === run.group).sort((a, b) => a.layer - b.layer);
	const layers = [];
	for (const r of records) {
		const f = must(await e.exportTrainedSae(r.id));
		layers.push({
			layer: r.layer,
			hook: r.cfg.hook,
			cfgJson: f.cfgJson,
			safetensors: b64(f.safetensors),
			last: r.last,
			ce: r.ce
		});
	}
	await e.deleteTrainingRun(run.group); // every layer's record: the files are what is kept
	mark('end');
	return { layers, layerEv, ce: run.ce, phases };
};

// Attribution: edges read off a gradient batch (reference: contractSources in
// src/lib/engine/attribution/backward-ops.ts). Source s is a vector written into the residual at
// position pos[s] (activation × W_dec row, error, b_dec, token embedding); its direct effect on
// target b is
//
//   out[b · total + offset + s] = Σ_d g[b, pos[s], d] · src[s, d]
//
// Every layer's sources land in one output row per target (at `offset`), read back once per batch.
// Dispatch: (ceil(n_src / 64), batch).
struct Params {
	batch: u32,
	n_pos: u32,
	dim: u32,
	n_src: u32,
	total: u32,
	offset: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read> src: array<f32>;
@group(0) @binding(3) var<storage, read> pos: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
	let s = gid.x;
	let b = gid.y;
	if (s >= p.n_src || b >= p.batch) {
		return;
	}
	let go = (b * p.n_pos + pos[s]) * p.dim;
	let so = s * p.dim;
	var acc = 0.0;
	for (var d = 0u; d < p.dim; d++) {
		acc += g[go + d] * src[so + d];
	}
	out[b * p.total + p.offset + s] = acc;
}

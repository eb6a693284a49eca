// Attribution backward: a batch of gradient rows through the transpose of a linear map, with the
// frozen RMSNorm diagonal and an optional residual added (src/lib/engine/attribution/backward-ops.ts
// matTransposeRows is the reference).
//
//   out[r, i] = base[r, i] + scale[(r % n_pos) * n_in + i] * Σ_j x[r, j] · w[j * n_in + i]
//
// w is [n_out, n_in] (out, in), as llama2.c stores W_o, W_v and a transcoder stores W_skip, so this is
// Wᵀ · x[r]. has_scale = 0 drops the scale (W_oᵀ); has_base = 0 drops base (out is then overwritten).
// Dispatch: (ceil(n_in / 64), rows); each workgroup stages its row of x through shared memory.
struct Params {
	rows: u32,
	n_out: u32,
	n_in: u32,
	n_pos: u32,
	has_scale: u32,
	has_base: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> scale: array<f32>;
@group(0) @binding(4) var<storage, read> base: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

var<workgroup> xs: array<f32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
	let i = gid.x;
	let r = gid.y;
	var acc = 0.0;
	for (var j0 = 0u; j0 < p.n_out; j0 += 64u) {
		let j = j0 + lid.x;
		xs[lid.x] = select(0.0, x[r * p.n_out + j], j < p.n_out);
		workgroupBarrier();
		if (i < p.n_in) {
			let n = min(64u, p.n_out - j0);
			for (var k = 0u; k < n; k++) {
				acc += xs[k] * w[(j0 + k) * p.n_in + i];
			}
		}
		workgroupBarrier();
	}
	if (i >= p.n_in) {
		return;
	}
	let o = r * p.n_in + i;
	var v = acc;
	if (p.has_scale != 0u) {
		v *= scale[(r % p.n_pos) * p.n_in + i];
	}
	if (p.has_base != 0u) {
		v += base[o];
	}
	out[o] = v;
}

// Attribution: where a target's read-out direction enters the backward pass (reference: the CPU
// backend's inject in src/lib/engine/attribution/backend.ts):
//
//   g[(dst[2k] · n_pos + dst[2k+1]) · dim + d] += vecs[k · dim + d]
//
// Each target (batch row dst[2k]) is injected once, so no two threads write one element.
// Dispatch: (ceil(dim / 64), n).
struct Params {
	n: u32,
	n_pos: u32,
	dim: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> vecs: array<f32>;
@group(0) @binding(2) var<storage, read> dst: array<u32>;
@group(0) @binding(3) var<storage, read_write> g: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
	let d = gid.x;
	let k = gid.y;
	if (d >= p.dim || k >= p.n) {
		return;
	}
	let o = (dst[2u * k] * p.n_pos + dst[2u * k + 1u]) * p.dim + d;
	g[o] += vecs[k * p.dim + d];
}

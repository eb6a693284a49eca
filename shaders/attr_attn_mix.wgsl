// Attribution backward through attention's mixing with the patterns frozen, grouped-query style
// (reference: attentionMixBackward in src/lib/engine/attribution/backward-ops.ts):
//
//   dv[b, t, kv·hs + i] = Σ_{h reading kv} Σ_{q ≥ t} A[h, q, t] · dz[b, q, h·hs + i]
//
// dz [batch, n_pos, n_heads·hs], A [n_heads, n_pos, n_pos] (zero above the diagonal), dv [batch, n_pos, n_kv·hs].
// Dispatch: (ceil(n_kv·hs / 64), batch · n_pos); one thread per output element.
struct Params {
	batch: u32,
	n_pos: u32,
	n_heads: u32,
	n_kv: u32,
	hs: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dz: array<f32>;
@group(0) @binding(2) var<storage, read> pattern: array<f32>;
@group(0) @binding(3) var<storage, read_write> dv: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
	let e = gid.x;
	let row = gid.y;
	let kv_dim = p.n_kv * p.hs;
	if (e >= kv_dim || row >= p.batch * p.n_pos) {
		return;
	}
	let b = row / p.n_pos;
	let t = row % p.n_pos;
	let kvh = e / p.hs;
	let i = e % p.hs;
	let group = p.n_heads / p.n_kv;
	let dim = p.n_heads * p.hs;
	var acc = 0.0;
	for (var h = kvh * group; h < (kvh + 1u) * group; h++) {
		for (var q = t; q < p.n_pos; q++) {
			acc += pattern[(h * p.n_pos + q) * p.n_pos + t] * dz[(b * p.n_pos + q) * dim + h * p.hs + i];
		}
	}
	dv[row * kv_dim + e] = acc;
}

// Per-token top-k of a [T, n] matrix, in the order (value descending, index ascending):
//   ids[t, r], vals[t, r] for r < k.
// Then, if mask == 1, zeroes every entry of the row that ranks after the k-th (TopK SAEs).
//
// Dispatch: (T, 1, 1) — one workgroup of 256 threads per row. Round r finds the best entry that
// ranks after round r-1's pick (no scratch copy of the row), by a strided scan and a tree reduction.

struct Params {
  tokens: u32,
  n: u32,
  k: u32,
  mask: u32,
}

@group(0) @binding(0) var<storage, read_write> m: array<f32>;
@group(0) @binding(1) var<storage, read_write> ids: array<u32>;
@group(0) @binding(2) var<storage, read_write> vals: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

const WG: u32 = 256u;
const NONE: u32 = 0xffffffffu;
var<workgroup> rv: array<f32, WG>;
var<workgroup> ri: array<u32, WG>;

// (va, ia) ranks before (vb, ib)
fn before(va: f32, ia: u32, vb: f32, ib: u32) -> bool {
  return ib == NONE || (ia != NONE && (va > vb || (va == vb && ia < ib)));
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let base = wg.x * p.n;
  var prev_v = 0.0;
  var prev_i = NONE;
  for (var r = 0u; r < p.k; r++) {
    var bv = 0.0;
    var bi = NONE;
    for (var i = lid; i < p.n; i += WG) {
      let v = m[base + i];
      let after_prev = prev_i == NONE || before(prev_v, prev_i, v, i);
      if (after_prev && before(v, i, bv, bi)) { bv = v; bi = i; }
    }
    rv[lid] = bv;
    ri[lid] = bi;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
      if (lid < s && before(rv[lid + s], ri[lid + s], rv[lid], ri[lid])) {
        rv[lid] = rv[lid + s];
        ri[lid] = ri[lid + s];
      }
      workgroupBarrier();
    }
    prev_v = rv[0];
    prev_i = ri[0];
    workgroupBarrier();
    if (lid == 0u) {
      ids[wg.x * p.k + r] = prev_i;
      vals[wg.x * p.k + r] = prev_v;
    }
  }
  if (p.mask == 1u) {
    for (var i = lid; i < p.n; i += WG) {
      if (prev_i != NONE && before(prev_v, prev_i, m[base + i], i)) { m[base + i] = 0.0; }
    }
  }
}

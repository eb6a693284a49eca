// Per-row top-k of a [rows, n] matrix, in the order (value descending, index ascending):
//   ids[r, j], vals[r, j] for j < k   (k <= 128)
// Then, if mask == 1, zeroes every entry of the row that ranks after the k-th (TopK SAEs).
//
// Dispatch: (rows, 1, 1) — a workgroup of 64 threads per row. Each thread keeps a sorted top-k of
// its strided slice in private memory (no barriers), writes it to `scratch`, and thread 0 merges the
// 64 lists. Two barriers a row: barriers, not arithmetic, are what costs on small workloads.

struct Params {
  rows: u32,
  n: u32,
  k: u32,
  mask: u32,
}

@group(0) @binding(0) var<storage, read_write> m: array<f32>;
@group(0) @binding(1) var<storage, read_write> ids: array<u32>;
@group(0) @binding(2) var<storage, read_write> vals: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
@group(0) @binding(4) var<storage, read_write> scratch_v: array<f32>; // [rows, 64, k]
@group(0) @binding(5) var<storage, read_write> scratch_i: array<u32>;

const WG: u32 = 64u;
const MAX_K: u32 = 128u;
const NONE: u32 = 0xffffffffu;
var<workgroup> kth_v: f32;
var<workgroup> kth_i: u32;

// (va, ia) ranks before (vb, ib)
fn before(va: f32, ia: u32, vb: f32, ib: u32) -> bool {
  return va > vb || (va == vb && ia < ib);
}

// Inserts (v, i) into the sorted list (lv, li) of *cnt entries, keeping at most k.
fn insert(lv: ptr<function, array<f32, MAX_K>>, li: ptr<function, array<u32, MAX_K>>, cnt: ptr<function, u32>, k: u32, v: f32, i: u32) {
  if (*cnt >= k && !before(v, i, (*lv)[k - 1u], (*li)[k - 1u])) { return; }
  var j = min(*cnt, k - 1u);
  if (*cnt < k) { *cnt = *cnt + 1u; }
  while (j > 0u && before(v, i, (*lv)[j - 1u], (*li)[j - 1u])) {
    (*lv)[j] = (*lv)[j - 1u];
    (*li)[j] = (*li)[j - 1u];
    j--;
  }
  (*lv)[j] = v;
  (*li)[j] = i;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = wg.x;
  let base = row * p.n;
  let k = p.k;
  var lv: array<f32, MAX_K>;
  var li: array<u32, MAX_K>;
  var cnt = 0u;
  for (var i = lid; i < p.n; i += WG) { insert(&lv, &li, &cnt, k, m[base + i], i); }
  let sb = (row * WG + lid) * k;
  for (var j = 0u; j < k; j++) {
    scratch_v[sb + j] = lv[j];
    scratch_i[sb + j] = select(NONE, li[j], j < cnt);
  }
  storageBarrier();
  workgroupBarrier();
  if (lid == 0u) {
    var mv: array<f32, MAX_K>;
    var mi: array<u32, MAX_K>;
    var mc = 0u;
    for (var c = 0u; c < WG * k; c++) {
      let i = scratch_i[row * WG * k + c];
      if (i == NONE) { continue; }
      insert(&mv, &mi, &mc, k, scratch_v[row * WG * k + c], i);
    }
    for (var j = 0u; j < k; j++) {
      ids[row * k + j] = select(NONE, mi[j], j < mc);
      vals[row * k + j] = mv[j];
    }
    kth_v = mv[max(mc, 1u) - 1u];
    kth_i = select(NONE, mi[max(mc, 1u) - 1u], mc > 0u);
  }
  workgroupBarrier();
  if (p.mask == 1u && kth_i != NONE) {
    for (var i = lid; i < p.n; i += WG) {
      if (before(kth_v, kth_i, m[base + i], i)) { m[base + i] = 0.0; }
    }
  }
}

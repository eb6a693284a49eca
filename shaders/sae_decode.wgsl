// SAE decoder for one chunk of features (W_dec may be split across bindings by rows):
//   xhat[t, i] (+)= sum_{f in chunk} acts[t, offset + f] · w_dec[f, i]   (+ b_dec[i] on the first chunk)
// Chunks after the first accumulate into xhat.
//
// Dispatch: (ceil(d_in / 64), ceil(T / 8), 1). Like sae_encode: 64 outputs × 8 tokens a workgroup,
// the tokens' activations staged in workgroup memory 64 features at a time; w_dec rows are read
// contiguously across threads.

struct Params {
  tokens: u32,
  d_in: u32,
  rows: u32,       // features in this chunk
  d_sae: u32,      // row length of acts
  offset: u32,     // first feature of this chunk
  accumulate: u32, // 0 on the first chunk (adds b_dec), 1 after
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<storage, read> acts: array<f32>;
@group(0) @binding(1) var<storage, read> w_dec: array<f32>;
@group(0) @binding(2) var<storage, read> b_dec: array<f32>;
@group(0) @binding(3) var<storage, read_write> xhat: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

const WG: u32 = 64u;
const TT: u32 = 8u;
const KT: u32 = 64u;
var<workgroup> as_: array<f32, 512>; // TT * KT

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = wg.x * WG + lid;
  let t0 = wg.y * TT;
  var acc: array<f32, 8>;
  for (var k0 = 0u; k0 < p.rows; k0 += KT) {
    for (var j = lid; j < TT * KT; j += WG) {
      let t = t0 + j / KT;
      let f = k0 + j % KT;
      var v = 0.0;
      if (t < p.tokens && f < p.rows) { v = acts[t * p.d_sae + p.offset + f]; }
      as_[j] = v;
    }
    workgroupBarrier();
    if (i < p.d_in) {
      let kmax = min(KT, p.rows - k0);
      for (var kk = 0u; kk < kmax; kk++) {
        let w = w_dec[(k0 + kk) * p.d_in + i];
        for (var tt = 0u; tt < TT; tt++) { acc[tt] += as_[tt * KT + kk] * w; }
      }
    }
    workgroupBarrier();
  }
  if (i >= p.d_in) { return; }
  for (var tt = 0u; tt < TT; tt++) {
    let t = t0 + tt;
    if (t >= p.tokens) { break; }
    if (p.accumulate == 0u) { xhat[t * p.d_in + i] = acc[tt] + b_dec[i]; }
    else { xhat[t * p.d_in + i] = xhat[t * p.d_in + i] + acc[tt]; }
  }
}

// SAE encoder for one chunk of features (W_enc may be split across bindings by columns):
//   acts[t, offset + f] = activation(sum_i xp[t, i] · w_enc[i, f] + b_enc[f]),  f < width
// activation: 0 ReLU, 1 JumpReLU (threshold), 2 ReLU'd pre-activation for TopK (top_k.wgsl selects).
//
// Dispatch: (ceil(width / 64), ceil(T / 8), 1). A workgroup is 64 features × 8 tokens: each thread
// owns one feature (reads of w_enc rows are contiguous across threads) and accumulates 8 tokens,
// with the tokens' inputs staged in workgroup memory 64 values of d_in at a time.

struct Params {
  tokens: u32,
  d_in: u32,
  width: u32,     // features in this chunk
  d_sae: u32,     // row length of acts
  offset: u32,    // first feature of this chunk
  activation: u32,
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<storage, read> xp: array<f32>;
@group(0) @binding(1) var<storage, read> w_enc: array<f32>;
@group(0) @binding(2) var<storage, read> b_enc: array<f32>;
@group(0) @binding(3) var<storage, read> threshold: array<f32>;
@group(0) @binding(4) var<storage, read_write> acts: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

const WG: u32 = 64u;
const TT: u32 = 8u;
const KT: u32 = 64u;
var<workgroup> xs: array<f32, 512>; // TT * KT

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let f = wg.x * WG + lid;
  let t0 = wg.y * TT;
  var acc: array<f32, 8>;
  for (var k0 = 0u; k0 < p.d_in; k0 += KT) {
    for (var j = lid; j < TT * KT; j += WG) {
      let t = t0 + j / KT;
      let i = k0 + j % KT;
      var v = 0.0;
      if (t < p.tokens && i < p.d_in) { v = xp[t * p.d_in + i]; }
      xs[j] = v;
    }
    workgroupBarrier();
    if (f < p.width) {
      let kmax = min(KT, p.d_in - k0);
      for (var kk = 0u; kk < kmax; kk++) {
        let w = w_enc[(k0 + kk) * p.width + f];
        for (var tt = 0u; tt < TT; tt++) { acc[tt] += xs[tt * KT + kk] * w; }
      }
    }
    workgroupBarrier();
  }
  if (f >= p.width) { return; }
  for (var tt = 0u; tt < TT; tt++) {
    let t = t0 + tt;
    if (t >= p.tokens) { break; }
    var v = acc[tt] + b_enc[f];
    if (p.activation == 1u && !(v > threshold[f])) { v = 0.0; }
    v = max(v, 0.0);
    acts[t * p.d_sae + p.offset + f] = v;
  }
}

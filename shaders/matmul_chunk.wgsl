// The SAE's dense products, one chunk of a weight matrix at a time (chunks keep each binding under
// maxStorageBufferBindingSize):
//   out[t, out_offset + j] = epilogue( sum_{i < K} a[t, a_offset + i] · w[i, j] ),  j < N, t < T
// encode: a = preprocessed residual [T, d_in],  w = W_enc columns [d_in, N],  out = acts [T, d_sae]
//         epilogue 0: ReLU(s + bias[j]); 1: JumpReLU(s + bias[j], threshold[j])
// decode: a = acts [T, d_sae] from a_offset,      w = W_dec rows [K, d_in],  out = xhat [T, d_in]
//         epilogue 2: s + bias[j] (the first chunk adds b_dec); 3: out += s (later chunks)
//
// Dispatch: (ceil(N / 64), ceil(T / 8), 1). A workgroup computes 64 outputs × 8 tokens: each thread
// owns one output column (w rows are read contiguously across threads) and accumulates 8 tokens;
// the tokens' inputs are staged in workgroup memory 64 values of K at a time.

struct Params {
  tokens: u32,
  k: u32,          // inner dimension
  n: u32,          // output columns in this chunk
  a_stride: u32,   // row length of a
  a_offset: u32,   // first column of a to read
  out_stride: u32, // row length of out
  out_offset: u32, // first column of out to write
  epilogue: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read> threshold: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

const WG: u32 = 64u;
const TT: u32 = 8u;
const KT: u32 = 64u;
var<workgroup> tile: array<f32, 512>; // TT * KT

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let j = wg.x * WG + lid;
  let t0 = wg.y * TT;
  var acc: array<f32, 8>;
  for (var k0 = 0u; k0 < p.k; k0 += KT) {
    for (var q = lid; q < TT * KT; q += WG) {
      let t = t0 + q / KT;
      let i = k0 + q % KT;
      var v = 0.0;
      if (t < p.tokens && i < p.k) { v = a[t * p.a_stride + p.a_offset + i]; }
      tile[q] = v;
    }
    workgroupBarrier();
    if (j < p.n) {
      let kmax = min(KT, p.k - k0);
      for (var kk = 0u; kk < kmax; kk++) {
        let wv = w[(k0 + kk) * p.n + j];
        for (var tt = 0u; tt < TT; tt++) { acc[tt] += tile[tt * KT + kk] * wv; }
      }
    }
    workgroupBarrier();
  }
  if (j >= p.n) { return; }
  for (var tt = 0u; tt < TT; tt++) {
    let t = t0 + tt;
    if (t >= p.tokens) { break; }
    let o = t * p.out_stride + p.out_offset + j;
    var v = acc[tt];
    if (p.epilogue == 3u) { v += out[o]; } else { v += bias[j]; }
    if (p.epilogue == 1u && !(v > threshold[j])) { v = 0.0; }
    if (p.epilogue <= 1u) { v = max(v, 0.0); }
    out[o] = v;
  }
}

// The input preprocessing an SAE was trained with, per token (see src/lib/engine/sae/sae.ts):
//   xp[t] = normalise(x[t] - mean?) - b_dec?          undo[t] = (mean, scale) for decoding
// norm: 0 none, 1 layer_norm, 2 constant_norm_rescale, 3 expected_average_only_in (× norm_scale)
//
// Dispatch: (T, 1, 1) — one workgroup of 256 threads per token, striding over d_in, with two
// workgroup reductions (sum for the mean, sum of squares for the scale).

struct Params {
  tokens: u32,
  d_in: u32,
  center: u32,
  norm: u32,
  norm_scale: f32,
  apply_b_dec: u32,
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> b_dec: array<f32>;
@group(0) @binding(2) var<storage, read_write> xp: array<f32>;
@group(0) @binding(3) var<storage, read_write> undo: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

// WG and workgroup_sum: workgroup_reduce.wgsl, prepended by the runner.

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let base = wg.x * p.d_in;
  let n = f32(p.d_in);

  var mean = 0.0;
  if (p.center == 1u || p.norm == 1u) {
    var s = 0.0;
    for (var i = lid; i < p.d_in; i += WG) { s += x[base + i]; }
    mean = workgroup_sum(lid, s) / n;
  }
  var ss = 0.0;
  for (var i = lid; i < p.d_in; i += WG) {
    let v = x[base + i] - mean;
    xp[base + i] = v;
    ss += v * v;
  }
  let sum_sq = workgroup_sum(lid, ss);
  var scale = 1.0;
  // SAELens's layer_norm (run_time_activation_norm_fn_in): (x - mu) / (std_unbiased + 1e-5), undone
  // on the way out by x_hat * std + mu with no eps (run_time_activation_ln_out).
  var undo_scale = 1.0;
  if (p.norm == 1u) {
    let sd = sqrt(sum_sq / max(n - 1.0, 1.0));
    scale = 1.0 / (sd + 1e-5);
    undo_scale = 1.0 / sd;
  }
  if (p.norm == 2u) { scale = sqrt(n) / sqrt(sum_sq); undo_scale = scale; }
  if (p.norm == 3u) { scale = p.norm_scale; undo_scale = scale; }
  for (var i = lid; i < p.d_in; i += WG) {
    var v = xp[base + i] * scale;
    if (p.apply_b_dec == 1u) { v -= b_dec[i]; }
    xp[base + i] = v;
  }
  if (lid == 0u) {
    undo[2u * wg.x] = mean;
    undo[2u * wg.x + 1u] = undo_scale;
  }
}

// Reconstruction error at the hook, per token, after undoing the SAE's input normalisation:
//   r = xhat[t] / scale[t] + mean[t]     (undo[t] = (mean, scale) from sae_preprocess)
//   out[t] = (sum (x - r)^2, x · r, x · x, r · r)
// and, in `column_sums`, sum_{t >= first} x[t, i] for the explained variance's mean over tokens.
//
// Dispatch main: (T, 1, 1), 256 threads a token. column_sums: (ceil(d_in / 64), 1, 1).

struct Params {
  tokens: u32,
  d_in: u32,
  first: u32, // column_sums starts here (BOS left out)
  _pad0: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> xhat: array<f32>;
@group(0) @binding(2) var<storage, read> undo: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

// WG and workgroup_sum4: workgroup_reduce.wgsl, prepended by the runner.

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let t = wg.x;
  let mean = undo[2u * t];
  let scale = undo[2u * t + 1u];
  var acc = vec4f(0.0);
  for (var i = lid; i < p.d_in; i += WG) {
    let a = x[t * p.d_in + i];
    let r = xhat[t * p.d_in + i] / scale + mean;
    acc += vec4f((a - r) * (a - r), a * r, a * a, r * r);
  }
  let total = workgroup_sum4(lid, acc);
  if (lid == 0u) {
    out[4u * t] = total.x;
    out[4u * t + 1u] = total.y;
    out[4u * t + 2u] = total.z;
    out[4u * t + 3u] = total.w;
  }
}

@compute @workgroup_size(64)
fn column_sums(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x;
  if (i >= p.d_in) { return; }
  var s = 0.0;
  for (var t = p.first; t < p.tokens; t++) { s += x[t * p.d_in + i]; }
  out[4u * p.tokens + i] = s;
}

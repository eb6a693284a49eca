// Direct logit effect of one feature: what writing its decoder direction does to each token's logit,
// through the final norm's scale (the norm's division by the residual's RMS is left out, as usual):
//   out[v]     =  sum_i d[i] · g[i] · unembed[v, i]
//   out[V + v] = -out[v]                 (so one top_k over 2 rows gives the top positive and negative)
// d = W_dec[f] (d_model), g = final norm weight, unembed = [V, d_model] (the classifier rows).
//
// Dispatch: (ceil(V / 64), 1, 1) — one thread per vocabulary entry, a dot product over d_model.

struct Params {
  vocab: u32,
  d_model: u32,
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<storage, read> d: array<f32>;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read> unembed: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let v = gid.x;
  if (v >= p.vocab) { return; }
  var acc = 0.0;
  for (var i = 0u; i < p.d_model; i++) { acc += d[i] * g[i] * unembed[v * p.d_model + i]; }
  out[v] = acc;
  out[p.vocab + v] = -acc;
}

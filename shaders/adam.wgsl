// One Adam step with bias correction on one parameter tensor, in place:
//   m = β1 m + (1−β1) g;  v = β2 v + (1−β2) g²;  w −= lr · (m / c1) / (sqrt(v / c2) + ε),  c = 1 − βᵗ
// Reference: src/lib/engine/train/reference.ts adamStep.
// Dispatch: (ceil(len / 64), 1, 1), or (65535, ceil(…)) rows of 65535 workgroups for long tensors.

struct A {
  len: u32, _p: u32, _q: u32, _r: u32,
  lr: f32, beta1: f32, beta2: f32, eps: f32,
  c1: f32, c2: f32, _s: f32, _t: f32,
}

@group(0) @binding(0) var<storage, read_write> w: array<f32>;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read_write> m: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
@group(0) @binding(4) var<uniform> a: A;

@compute @workgroup_size(64)
fn adam(@builtin(global_invocation_id) id: vec3u, @builtin(num_workgroups) nw: vec3u) {
  let i = id.x + id.y * nw.x * 64u;
  if (i >= a.len) { return; }
  let gi = g[i];
  let mi = a.beta1 * m[i] + (1.0 - a.beta1) * gi;
  let vi = a.beta2 * v[i] + (1.0 - a.beta2) * gi * gi;
  m[i] = mi;
  v[i] = vi;
  w[i] -= a.lr * (mi / a.c1) / (sqrt(vi / a.c2) + a.eps);
}

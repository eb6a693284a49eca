// Steering at a hook, in place on the residual [T, d] (Neuronpedia's conventions):
//   add:   resid[t] += strength_s · dir_s
//   clamp: resid[t] += (target_s − acts[t, feature_s]) · dir_s      (acts: the SAE's encoding at this hook)
// dir_s = W_dec[feature_s] (or its unit-normalised row: chosen on the CPU when directions are uploaded).
// Position `skip_position` (BOS, when special tokens are not steered) is left alone; 0xffffffff: none.
//
// Dispatch: (ceil(d / 64), T, 1) — one thread per residual element, a loop over the S specs.

struct Params {
  tokens: u32,
  d: u32,
  specs: u32,
  d_sae: u32,
  skip_position: u32,
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

struct Spec {
  mode: u32,      // 0 add, 1 clamp
  feature: u32,   // index into acts rows (clamp)
  value: f32,     // strength (add) or target activation (clamp)
  _pad: u32,
}

@group(0) @binding(0) var<storage, read_write> resid: array<f32>;
@group(0) @binding(1) var<storage, read> dirs: array<f32>;   // [S, d]
@group(0) @binding(2) var<storage, read> specs: array<Spec>;
@group(0) @binding(3) var<storage, read> acts: array<f32>;   // [T, d_sae]
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x;
  let t = gid.y;
  if (i >= p.d || t >= p.tokens || t == p.skip_position) { return; }
  var delta = 0.0;
  for (var s = 0u; s < p.specs; s++) {
    let sp = specs[s];
    var c = sp.value;
    if (sp.mode == 1u) { c = sp.value - acts[t * p.d_sae + sp.feature]; }
    delta += c * dirs[s * p.d + i];
  }
  resid[t * p.d + i] += delta;
}

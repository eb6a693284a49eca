// Steering at a hook, in place on the residual [T, d], one entry after the other, each on the row
// as the entries before it left it. With h a residual row, v = dirs[s] (a decoder row or a saved
// vector; unit-normalised for add when asked, on the CPU) and û = v / |v|:
//   add (0):         h += value · v
//   clamp (1):       h += (value − acts[t, feature]) · v                (acts: the SAE's encoding at this hook)
//   orthogonal (2):  h → (I − P) h + value · P h, P = û ûᵀ,  i.e.  h += (value − 1) (h · û) û
//   cap (3):         h += (min(h · û, value) − h · û) û               (projection capped above at value)
// Orthogonal and cap are Neuronpedia's ORTHOGONAL_DECOMP and PROJECTION_CAP. Neuronpedia's inference
// server (hijohnnylin/neuronpedia, apps/inference/neuronpedia_inference/endpoints/steer/completion.py)
// maps them to interp-engine's OrthogonalDecompSpec(vector, coeff) and ProjectionCapSpec(vector,
// min=None, max=coeff), coeff = strength_multiplier · strength; their arithmetic is in
// decoderesearch/interp-engine, interp_engine/steer.py:
//   OrthogonalProjector.delta:  projection = (activations * unit).sum(-1); (strength_multiplier − 1) * projection * unit
//   projection_cap_delta:       capped = clamp(projection, min, max); (capped − projection) * unit
//   unit_vector(v) = v / ‖v‖ (a zero vector is refused there; here it leaves the row alone).
// Rows: entry s steers row t when lo ≤ t < hi or t is among lists[list_off .. list_off + list_len)
// (steer/scope.ts resolves a scope to the rows of this forward). Row `skip_position` (0xffffffff:
// none) is left alone by every entry. Reference: steer/spec.ts steerRowsReference.
//
// Dispatch: (T, 1, 1), one workgroup of WG = 256 threads per row; thread l owns elements l, l + WG, …
// (so the reduction and the update of an element are the same thread's), the loop over entries is
// the same for every thread (its barriers stay in uniform control flow).

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
  mode: u32,      // 0 add, 1 clamp, 2 orthogonal, 3 cap
  feature: u32,   // index into acts rows (clamp)
  value: f32,     // strength (add), target activation (clamp), factor (orthogonal), cap (cap)
  lo: u32,        // rows lo ≤ t < hi …
  hi: u32,
  list_off: u32,  // … and the rows listed in lists
  list_len: u32,
  _pad: u32,
}

@group(0) @binding(0) var<storage, read_write> resid: array<f32>;
@group(0) @binding(1) var<storage, read> dirs: array<f32>;   // [S, d]
@group(0) @binding(2) var<storage, read> specs: array<Spec>;
@group(0) @binding(3) var<storage, read> acts: array<f32>;   // [T, d_sae]
@group(0) @binding(4) var<uniform> p: Params;
@group(0) @binding(5) var<storage, read> lists: array<u32>;

fn in_scope(sp: Spec, t: u32) -> bool {
  if (t >= sp.lo && t < sp.hi) { return true; }
  for (var k = 0u; k < sp.list_len; k++) {
    if (lists[sp.list_off + k] == t) { return true; }
  }
  return false;
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid3: vec3u) {
  let t = wid.x;
  let lid = lid3.x;
  if (t >= p.tokens || t == p.skip_position) { return; }
  let row = t * p.d;
  for (var s = 0u; s < p.specs; s++) {
    let sp = specs[s];
    let dir = s * p.d;
    // h · v and v · v, reduced whatever the method (every thread reaches the barrier).
    var part = vec4f(0.0);
    for (var i = lid; i < p.d; i += WG) {
      let v = dirs[dir + i];
      part += vec4f(resid[row + i] * v, v * v, 0.0, 0.0);
    }
    let sums = workgroup_sum4(lid, part);
    var c = 0.0;
    if (in_scope(sp, t)) {
      if (sp.mode == 0u) {
        c = sp.value;
      } else if (sp.mode == 1u) {
        c = sp.value - acts[t * p.d_sae + sp.feature];
      } else if (sums.y > 0.0) {
        let n = sqrt(sums.y);
        let proj = sums.x / n;
        var along = (sp.value - 1.0) * proj;
        if (sp.mode == 3u) { along = min(proj, sp.value) - proj; }
        c = along / n;
      }
    }
    if (c != 0.0) {
      for (var i = lid; i < p.d; i += WG) { resid[row + i] += c * dirs[dir + i]; }
    }
  }
}

// Per-feature statistics over a corpus, accumulated one context at a time from acts[T, d_sae]:
//   fires[f]      += tokens where the feature is active (> 0)
//   max_act[f]     = the largest activation seen
//   hist[f, b]    += active tokens whose activation falls in log bin b: b = floor((log10(a) + 3) · 4),
//                   clamped to [0, bins): 4 bins a decade from 1e-3
//   top[f, 0..N)   = the N strongest contexts (value, context, position of the max), strongest first
// Positions before `first` (BOS) are skipped. One thread owns a feature, so no atomics are needed.
//
// Dispatch: (ceil(d_sae / 64), 1, 1) — one thread per feature, one pass over the context's tokens.

struct Params {
  tokens: u32,
  d_sae: u32,
  context: u32,
  first: u32,
  n_top: u32,
  bins: u32,
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<storage, read> acts: array<f32>;
@group(0) @binding(1) var<storage, read_write> fires: array<u32>;
@group(0) @binding(2) var<storage, read_write> max_act: array<f32>;
@group(0) @binding(3) var<storage, read_write> hist: array<u32>;
@group(0) @binding(4) var<storage, read_write> top_val: array<f32>;
@group(0) @binding(5) var<storage, read_write> top_ref: array<u32>; // [d_sae, N, 2]: context, position
@group(0) @binding(6) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let f = gid.x;
  if (f >= p.d_sae) { return; }
  var best = 0.0;
  var best_t = 0u;
  var n = 0u;
  for (var t = p.first; t < p.tokens; t++) {
    let a = acts[t * p.d_sae + f];
    if (a > 0.0) {
      n++;
      let b = u32(clamp(floor((log2(a) / log2(10.0) + 3.0) * 4.0), 0.0, f32(p.bins - 1u)));
      hist[f * p.bins + b] += 1u;
      if (a > best) { best = a; best_t = t; }
    }
  }
  fires[f] += n;
  max_act[f] = max(max_act[f], best);
  if (best <= 0.0) { return; }
  let base = f * p.n_top;
  if (best <= top_val[base + p.n_top - 1u]) { return; }
  var j = p.n_top - 1u;
  while (j > 0u && top_val[base + j - 1u] < best) {
    top_val[base + j] = top_val[base + j - 1u];
    top_ref[2u * (base + j)] = top_ref[2u * (base + j - 1u)];
    top_ref[2u * (base + j) + 1u] = top_ref[2u * (base + j - 1u) + 1u];
    j--;
  }
  top_val[base + j] = best;
  top_ref[2u * (base + j)] = p.context;
  top_ref[2u * (base + j) + 1u] = best_t;
}

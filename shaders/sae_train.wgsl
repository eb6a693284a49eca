// SAE training, forward and backward, as dense gathers (WGSL has no float atomics: every output
// element is one thread's sum over the batch or the dictionary). Shapes: the batch is B rows picked
// from the activation store by `rows` (a shuffled index list), d = d_in, n = d_sae.
//   pre  = (x − b_dec) W_enc + b_enc;  acts = TopK/ReLU(pre);  err = acts W_dec + b_dec − x
//   loss = (1/B) Σ ‖err‖² + λ (1/B) Σ acts_bj ‖W_dec[j]‖   (λ = 0 for TopK)
// Reference: src/lib/engine/train/reference.ts.

struct P {
  B: u32, d: u32, n: u32, k: u32,
  l1: f32, topk: u32, store_rows: u32, _b: u32,
}

@group(0) @binding(0) var<storage, read> store: array<f32>;      // [rows, d] harvested activations
@group(0) @binding(1) var<storage, read> rows: array<u32>;       // [B] indices into store
@group(0) @binding(2) var<storage, read_write> w_enc: array<f32>; // [d, n]
@group(0) @binding(3) var<storage, read_write> b_enc: array<f32>; // [n]
@group(0) @binding(4) var<storage, read_write> w_dec: array<f32>; // [n, d]
@group(0) @binding(5) var<storage, read_write> b_dec: array<f32>; // [d]
@group(0) @binding(6) var<storage, read_write> pre: array<f32>;   // [B, n]
@group(0) @binding(7) var<storage, read_write> acts: array<f32>;  // [B, n]
@group(0) @binding(8) var<storage, read_write> err: array<f32>;   // [B, d]
@group(0) @binding(9) var<storage, read_write> norms: array<f32>; // [n] decoder row norms
@group(0) @binding(10) var<uniform> p: P;

@group(1) @binding(0) var<storage, read_write> g_w_enc: array<f32>;
@group(1) @binding(1) var<storage, read_write> g_b_enc: array<f32>;
@group(1) @binding(2) var<storage, read_write> g_w_dec: array<f32>;
@group(1) @binding(3) var<storage, read_write> g_b_dec: array<f32>;
@group(1) @binding(4) var<storage, read_write> dpre: array<f32>;  // [B, n]
@group(1) @binding(5) var<storage, read_write> stats: array<f32>; // [3, d] batch Σx, Σx², Σerr²
@group(1) @binding(6) var<storage, read_write> sel: array<u32>;   // [B, k] TopK: the chosen latents

fn x(b: u32, i: u32) -> f32 { return store[rows[b] * p.d + i]; }

// Dispatch (ceil(n/64), ceil(B/4)): pre[b..b+3, j]. Each thread does four rows, so every W_enc
// value it loads serves four dot products.
@compute @workgroup_size(64)
fn encode(@builtin(global_invocation_id) g: vec3u) {
  let j = g.x; let b0 = g.y * 4u;
  if (j >= p.n || b0 >= p.B) { return; }
  let rows_here = min(4u, p.B - b0);
  var a = vec4f(b_enc[j]);
  for (var i = 0u; i < p.d; i++) {
    let w = w_enc[i * p.n + j];
    let c = b_dec[i];
    var xs = vec4f(0.0);
    for (var r = 0u; r < rows_here; r++) { xs[r] = x(b0 + r, i) - c; }
    a += xs * w;
  }
  for (var r = 0u; r < rows_here; r++) { pre[(b0 + r) * p.n + j] = a[r]; }
}

// Dispatch (B): one workgroup per row. ReLU, or the k largest (ties: lower index) then ReLU.
// Selection marks acts[b, j] with a sentinel first, so a chosen entry whose ReLU is 0 stays chosen.
var<workgroup> best_v: array<f32, 64>;
var<workgroup> best_j: array<u32, 64>;
const TAKEN = -3.0e38;
@compute @workgroup_size(64)
fn activate(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let b = wg.x;
  let base = b * p.n;
  if (p.topk == 0u) {
    for (var j = t; j < p.n; j += 64u) { acts[base + j] = max(pre[base + j], 0.0); }
    return;
  }
  for (var j = t; j < p.n; j += 64u) { acts[base + j] = 0.0; }
  workgroupBarrier();
  for (var r = 0u; r < p.k; r++) {
    var bv = -3.4e38; var bj = 0xffffffffu;
    for (var j = t; j < p.n; j += 64u) {
      if (acts[base + j] == TAKEN) { continue; }
      let v = pre[base + j];
      if (v > bv || (v == bv && j < bj)) { bv = v; bj = j; }
    }
    best_v[t] = bv; best_j[t] = bj;
    workgroupBarrier();
    for (var s = 32u; s > 0u; s >>= 1u) {
      if (t < s) {
        let ov = best_v[t + s]; let oj = best_j[t + s];
        if (ov > best_v[t] || (ov == best_v[t] && oj < best_j[t])) { best_v[t] = ov; best_j[t] = oj; }
      }
      workgroupBarrier();
    }
    if (t == 0u) {
      if (best_j[0] != 0xffffffffu) { acts[base + best_j[0]] = TAKEN; }
      sel[b * p.k + r] = best_j[0];
    }
    workgroupBarrier();
  }
  for (var j = t; j < p.n; j += 64u) {
    acts[base + j] = select(0.0, max(pre[base + j], 0.0), acts[base + j] == TAKEN);
  }
}

// Dispatch (ceil(d/64), B): err[b, i] = x̂ − x. TopK reads only the k chosen rows of W_dec.
@compute @workgroup_size(64)
fn decode(@builtin(global_invocation_id) g: vec3u) {
  let i = g.x; let b = g.y;
  if (i >= p.d || b >= p.B) { return; }
  var a = b_dec[i];
  if (p.topk == 1u) {
    for (var r = 0u; r < p.k; r++) {
      let j = sel[b * p.k + r];
      if (j < p.n) { a += acts[b * p.n + j] * w_dec[j * p.d + i]; }
    }
  } else {
    for (var j = 0u; j < p.n; j++) {
      let s = acts[b * p.n + j];
      if (s != 0.0) { a += s * w_dec[j * p.d + i]; }
    }
  }
  err[b * p.d + i] = a - x(b, i);
}

// Dispatch (ceil(n/64)): ‖W_dec[j]‖.
@compute @workgroup_size(64)
fn decoder_norms(@builtin(global_invocation_id) g: vec3u) {
  let j = g.x;
  if (j >= p.n) { return; }
  var a = 0.0;
  for (var i = 0u; i < p.d; i++) { let w = w_dec[j * p.d + i]; a += w * w; }
  norms[j] = sqrt(a);
}

// Dispatch (ceil(n/64), B): ∂loss/∂pre, through the gate (acts > 0).
@compute @workgroup_size(64)
fn grad_pre(@builtin(global_invocation_id) g: vec3u) {
  let j = g.x; let b = g.y;
  if (j >= p.n || b >= p.B) { return; }
  var a = 0.0;
  if (acts[b * p.n + j] > 0.0) {
    for (var i = 0u; i < p.d; i++) { a += err[b * p.d + i] * w_dec[j * p.d + i]; }
    a = a * 2.0 / f32(p.B) + p.l1 / f32(p.B) * norms[j];
  }
  dpre[b * p.n + j] = a;
}

// Dispatch (ceil(d/64), n): ∂loss/∂W_dec[j, i] = (2/B) Σ_b acts err + (λ/B) Σ_b acts · W_dec[j,i]/‖W_dec[j]‖.
@compute @workgroup_size(64)
fn grad_w_dec(@builtin(global_invocation_id) g: vec3u) {
  let i = g.x; let j = g.y;
  if (i >= p.d || j >= p.n) { return; }
  var a = 0.0; var s = 0.0;
  for (var b = 0u; b < p.B; b++) {
    let v = acts[b * p.n + j];
    if (v != 0.0) { a += v * err[b * p.d + i]; s += v; }
  }
  var out = a * 2.0 / f32(p.B);
  if (p.l1 > 0.0 && norms[j] > 0.0) { out += p.l1 / f32(p.B) * s * w_dec[j * p.d + i] / norms[j]; }
  g_w_dec[j * p.d + i] = out;
}

// Dispatch (ceil(n/64), d): ∂loss/∂W_enc[i, j] = Σ_b (x − b_dec)_bi dpre_bj.
@compute @workgroup_size(64)
fn grad_w_enc(@builtin(global_invocation_id) g: vec3u) {
  let j = g.x; let i = g.y;
  if (j >= p.n || i >= p.d) { return; }
  var a = 0.0;
  for (var b = 0u; b < p.B; b++) {
    let gr = dpre[b * p.n + j];
    if (gr != 0.0) { a += (x(b, i) - b_dec[i]) * gr; }
  }
  g_w_enc[i * p.n + j] = a;
}

// Dispatch (ceil(n/64)): ∂loss/∂b_enc[j] = Σ_b dpre.
@compute @workgroup_size(64)
fn grad_b_enc(@builtin(global_invocation_id) g: vec3u) {
  let j = g.x;
  if (j >= p.n) { return; }
  var a = 0.0;
  for (var b = 0u; b < p.B; b++) { a += dpre[b * p.n + j]; }
  g_b_enc[j] = a;
}

// Dispatch (ceil(d/64)), after grad_b_enc: ∂loss/∂b_dec[i] = (2/B) Σ_b err − Σ_j g_b_enc[j] W_enc[i, j].
@compute @workgroup_size(64)
fn grad_b_dec(@builtin(global_invocation_id) g: vec3u) {
  let i = g.x;
  if (i >= p.d) { return; }
  var a = 0.0;
  for (var b = 0u; b < p.B; b++) { a += err[b * p.d + i]; }
  a = a * 2.0 / f32(p.B);
  for (var j = 0u; j < p.n; j++) { a -= g_b_enc[j] * w_enc[i * p.n + j]; }
  g_b_dec[i] = a;
}

// Dispatch (ceil(n/64)), after an Adam step on W_dec (TopK): rows back to unit norm.
@compute @workgroup_size(64)
fn normalize_rows(@builtin(global_invocation_id) g: vec3u) {
  let j = g.x;
  if (j >= p.n) { return; }
  var a = 0.0;
  for (var i = 0u; i < p.d; i++) { let w = w_dec[j * p.d + i]; a += w * w; }
  let s = select(1.0, 1.0 / sqrt(a), a > 0.0);
  for (var i = 0u; i < p.d; i++) { w_dec[j * p.d + i] *= s; }
}

// Dispatch (ceil(d/64)): b_dec = the mean of every stored activation (its initialisation).
@compute @workgroup_size(64)
fn init_b_dec(@builtin(global_invocation_id) g: vec3u) {
  let i = g.x;
  if (i >= p.d) { return; }
  var a = 0.0;
  for (var r = 0u; r < p.store_rows; r++) { a += store[r * p.d + i]; }
  b_dec[i] = a / f32(max(p.store_rows, 1u));
}

// Dispatch (ceil(d/64)), after decode: per dimension, the batch's Σx, Σx² and Σerr² (for MSE and
// explained variance without reading the batch back).
@compute @workgroup_size(64)
fn batch_stats(@builtin(global_invocation_id) g: vec3u) {
  let i = g.x;
  if (i >= p.d) { return; }
  var s1 = 0.0; var s2 = 0.0; var se = 0.0;
  for (var b = 0u; b < p.B; b++) {
    let v = x(b, i); let e = err[b * p.d + i];
    s1 += v; s2 += v * v; se += e * e;
  }
  stats[i] = s1; stats[p.d + i] = s2; stats[2u * p.d + i] = se;
}

// TopK: the weight gradients from the k chosen latents of each row only. One workgroup per latent j
// gathers the rows that chose j (a workgroup-shared list built with a u32 atomic counter; the sums
// themselves need no float atomics), then each thread sums over that list for its i:
//   ∂W_dec[j, i] = (2/B) Σ_{b∋j} acts[b, j] err[b, i]      ∂W_enc[i, j] = Σ_{b∋j} (x − b_dec)[b, i] dpre[b, j]
// B·k work per latent instead of B. Dispatch (n): workgroup j. Batches up to MAX_ROWS rows.
const MAX_ROWS = 1024u;
var<workgroup> chosen_by: array<u32, 1024>;
var<workgroup> chosen_count: atomic<u32>;

fn rows_that_chose(j: u32, t: u32) -> u32 {
  if (t == 0u) { atomicStore(&chosen_count, 0u); }
  workgroupBarrier();
  let entries = p.B * p.k;
  for (var e = t; e < entries; e += 64u) {
    if (sel[e] == j) {
      let slot = atomicAdd(&chosen_count, 1u);
      if (slot < MAX_ROWS) { chosen_by[slot] = e / p.k; }
    }
  }
  workgroupBarrier();
  return min(atomicLoad(&chosen_count), MAX_ROWS);
}

@compute @workgroup_size(64)
fn grad_w_dec_topk(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let j = wg.x;
  let count = rows_that_chose(j, t);
  for (var i = t; i < p.d; i += 64u) {
    var a = 0.0;
    for (var c = 0u; c < count; c++) { let b = chosen_by[c]; a += acts[b * p.n + j] * err[b * p.d + i]; }
    g_w_dec[j * p.d + i] = a * 2.0 / f32(p.B);
  }
}

@compute @workgroup_size(64)
fn grad_w_enc_topk(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let j = wg.x;
  let count = rows_that_chose(j, t);
  for (var i = t; i < p.d; i += 64u) {
    var a = 0.0;
    for (var c = 0u; c < count; c++) { let b = chosen_by[c]; a += (x(b, i) - b_dec[i]) * dpre[b * p.n + j]; }
    g_w_enc[i * p.n + j] = a;
  }
}

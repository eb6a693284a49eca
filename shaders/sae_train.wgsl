// SAE training, forward and backward, as dense gathers (WGSL has no float atomics: every output
// element is one thread's sum over the batch or the dictionary). Shapes: the batch is B rows picked
// from the activation store by `rows` (a shuffled index list), d = d_in, n = d_sae.
//   pre  = (x − b_dec) W_enc + b_enc;  acts = TopK/ReLU(pre);  err = acts W_dec + b_dec − x
//   loss = (1/B) Σ ‖err‖² + λ (1/B) Σ acts_bj ‖W_dec[j]‖   (λ = 0 for TopK)
//        + AuxK (TopK): α·scale·(1/B) Σ ‖aux_err‖², aux_err = Σ_{dead j chosen} relu(pre) W_dec[j] + err
//          (the error err = x̂ − x is a constant there: dead latents learn to explain what live ones miss)
// Reference: src/lib/engine/train/reference.ts.

struct P {
  B: u32, d: u32, n: u32, k: u32,
  l1: f32, topk: u32, store_rows: u32, aux_k: u32,  // aux_k: dead latents per row this step (0: AuxK off)
  aux_weight: f32, dead_after: u32, _c: u32, _d: u32, // α·min(dead/k_aux, 1); dead: no firing for > dead_after tokens
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
@group(1) @binding(5) var<storage, read_write> stats: array<f32>; // [4, d] batch Σx, Σx², Σerr², Σaux_err²
@group(1) @binding(6) var<storage, read_write> sel: array<u32>;   // [B, k] TopK: the chosen latents
@group(1) @binding(7) var<storage, read_write> since_fired: array<u32>; // [n] tokens since each latent last fired
@group(1) @binding(8) var<storage, read_write> aux_sel: array<u32>;  // [B, aux_k] AuxK: the chosen dead latents
@group(1) @binding(9) var<storage, read_write> aux_acts: array<f32>; // [B, aux_k] their activations
@group(1) @binding(10) var<storage, read_write> aux_err: array<f32>; // [B, d]

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

// Dispatch (B), TopK with AuxK: per row, the aux_k largest pre-activations among dead latents that are
// not active in the row (order: value descending, then index). No scratch marks: each round takes the
// best entry that comes after the previous round's in that order.
const NONE = 0xffffffffu;
@compute @workgroup_size(64)
fn activate_aux(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let b = wg.x;
  let base = b * p.n;
  var last_v = 0.0; var last_j = NONE;
  for (var r = 0u; r < p.aux_k; r++) {
    var bv = -3.4e38; var bj = NONE;
    for (var j = t; j < p.n; j += 64u) {
      if (since_fired[j] <= p.dead_after || acts[base + j] != 0.0) { continue; }
      let v = pre[base + j];
      if (r > 0u && !(v < last_v || (v == last_v && j > last_j))) { continue; }
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
    last_v = best_v[0]; last_j = best_j[0];
    if (t == 0u) {
      aux_sel[b * p.aux_k + r] = last_j;
      aux_acts[b * p.aux_k + r] = select(0.0, max(last_v, 0.0), last_j != NONE);
    }
    workgroupBarrier();
    if (last_j == NONE) { last_v = -3.4e38; } // nothing left: later rounds find nothing either
  }
}

// Dispatch (ceil(d/64), B), after decode: aux_err[b, i] = Σ_r aux_acts W_dec[aux_sel] + err (no b_dec).
@compute @workgroup_size(64)
fn decode_aux(@builtin(global_invocation_id) g: vec3u) {
  let i = g.x; let b = g.y;
  if (i >= p.d || b >= p.B) { return; }
  var a = err[b * p.d + i];
  for (var r = 0u; r < p.aux_k; r++) {
    let j = aux_sel[b * p.aux_k + r];
    if (j != NONE) { a += aux_acts[b * p.aux_k + r] * w_dec[j * p.d + i]; }
  }
  aux_err[b * p.d + i] = a;
}

// Dispatch (ceil(aux_k/64), B), after grad_pre: the AuxK gradient into the chosen dead latents'
// pre-activations. Within a row the chosen latents are distinct and not active, so no two threads
// write one entry and the main gradient there is 0.
@compute @workgroup_size(64)
fn grad_pre_aux(@builtin(global_invocation_id) g: vec3u) {
  let r = g.x; let b = g.y;
  if (r >= p.aux_k || b >= p.B) { return; }
  let j = aux_sel[b * p.aux_k + r];
  if (j == NONE || aux_acts[b * p.aux_k + r] <= 0.0) { return; }
  var a = 0.0;
  for (var i = 0u; i < p.d; i++) { a += aux_err[b * p.d + i] * w_dec[j * p.d + i]; }
  dpre[b * p.n + j] += a * 2.0 * p.aux_weight / f32(p.B);
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

// Dispatch (ceil(n/64)): ∂loss/∂b_enc[j] = Σ_b dpre; and, in the same pass over the batch, the
// dead-latent clock: tokens since latent j last fired (0 if it fired in this batch).
@compute @workgroup_size(64)
fn grad_b_enc(@builtin(global_invocation_id) g: vec3u) {
  let j = g.x;
  if (j >= p.n) { return; }
  var a = 0.0;
  var fired = false;
  for (var b = 0u; b < p.B; b++) { a += dpre[b * p.n + j]; fired = fired || acts[b * p.n + j] > 0.0; }
  g_b_enc[j] = a;
  since_fired[j] = select(min(since_fired[j], 0x7fffffffu - p.B) + p.B, 0u, fired);
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
  var s1 = 0.0; var s2 = 0.0; var se = 0.0; var sa = 0.0;
  for (var b = 0u; b < p.B; b++) {
    let v = x(b, i); let e = err[b * p.d + i];
    s1 += v; s2 += v * v; se += e * e;
    if (p.aux_k > 0u) { let ea = aux_err[b * p.d + i]; sa += ea * ea; }
  }
  stats[i] = s1; stats[p.d + i] = s2; stats[2u * p.d + i] = se; stats[3u * p.d + i] = sa;
}

// TopK: the weight gradients from the latents each row used only: its k chosen ones, and with AuxK
// its chosen dead ones. One workgroup per latent j gathers the entries that chose j (a
// workgroup-shared list built with a u32 atomic counter; the sums themselves need no float atomics),
// then each thread sums over that list for its i:
//   ∂W_dec[j, i] = (2/B) (Σ_{b∋j} acts[b, j] err[b, i] + α·scale Σ_{b∋j aux} aux_acts aux_err[b, i])
//   ∂W_enc[i, j] = Σ_{b∋j} (x − b_dec)[b, i] dpre[b, j]
// B·k work per latent instead of B. An entry counts only where it is live (its activation, or for
// W_enc its dpre, is non-zero), so a row is listed at most once per latent: a latent a row uses is
// not dead-eligible there. Dispatch (n): workgroup j. Batches up to MAX_ROWS rows.
const MAX_ROWS = 1024u;
const AUX = 0x80000000u; // list entries: index into sel, or AUX | index into aux_sel
var<workgroup> chosen_by: array<u32, 1024>;
var<workgroup> chosen_count: atomic<u32>;

fn list_clear(t: u32) {
  if (t == 0u) { atomicStore(&chosen_count, 0u); }
  workgroupBarrier();
}
fn list_push(entry: u32) {
  let slot = atomicAdd(&chosen_count, 1u);
  if (slot < MAX_ROWS) { chosen_by[slot] = entry; }
}
fn list_done() -> u32 {
  workgroupBarrier();
  return min(atomicLoad(&chosen_count), MAX_ROWS);
}
fn row_of(entry: u32) -> u32 {
  if ((entry & AUX) != 0u) { return (entry & ~AUX) / p.aux_k; }
  return entry / p.k;
}

@compute @workgroup_size(64)
fn grad_w_dec_topk(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let j = wg.x;
  list_clear(t);
  for (var e = t; e < p.B * p.k; e += 64u) { if (sel[e] == j && acts[(e / p.k) * p.n + j] > 0.0) { list_push(e); } }
  for (var e = t; e < p.B * p.aux_k; e += 64u) { if (aux_sel[e] == j && aux_acts[e] > 0.0) { list_push(AUX | e); } }
  let count = list_done();
  for (var i = t; i < p.d; i += 64u) {
    var a = 0.0; var a_aux = 0.0;
    for (var c = 0u; c < count; c++) {
      let e = chosen_by[c]; let b = row_of(e);
      if ((e & AUX) == 0u) { a += acts[b * p.n + j] * err[b * p.d + i]; }
      else { a_aux += aux_acts[e & ~AUX] * aux_err[b * p.d + i]; }
    }
    g_w_dec[j * p.d + i] = (a + p.aux_weight * a_aux) * 2.0 / f32(p.B);
  }
}

@compute @workgroup_size(64)
fn grad_w_enc_topk(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let j = wg.x;
  list_clear(t);
  for (var e = t; e < p.B * p.k; e += 64u) { if (sel[e] == j && dpre[(e / p.k) * p.n + j] != 0.0) { list_push(e); } }
  for (var e = t; e < p.B * p.aux_k; e += 64u) { if (aux_sel[e] == j && dpre[(e / p.aux_k) * p.n + j] != 0.0) { list_push(AUX | e); } }
  let count = list_done();
  for (var i = t; i < p.d; i += 64u) {
    var a = 0.0;
    for (var c = 0u; c < count; c++) { let b = row_of(chosen_by[c]); a += (x(b, i) - b_dec[i]) * dpre[b * p.n + j]; }
    g_w_enc[i * p.n + j] = a;
  }
}

// SAE training, forward and backward, as dense gathers (WGSL has no float atomics: every output
// element is one thread's sum over the batch or the dictionary). Shapes: the batch is B rows picked
// from the activation store by `rows` (a shuffled index list), d = d_in, n = d_sae.
//   pre  = (x − b_dec) W_enc + b_enc;  acts = TopK/ReLU(pre);  err = acts W_dec + b_dec − x
//   loss = (1/B) Σ ‖err‖² + λ (1/B) Σ acts_bj ‖W_dec[j]‖   (λ = 0 for TopK)
//        + AuxK (TopK): α·scale·(1/B) Σ ‖aux_err‖², aux_err = Σ_{dead j chosen} relu(pre) W_dec[j] + err
//          (the error err = x̂ − x is a constant there: dead latents learn to explain what live ones miss)
// Transcoders (tc = 1): each store row is [x (d) | y (m)], the input hook and the target hook
// (blocks.L.hook_mlp_in, blocks.L.hook_mlp_out); pre = x W_enc + b_enc (no b_dec on the input),
// err = acts W_dec + b_dec [+ x W_skipᵀ] − y, m wide. An SAE is m = d, stride = d, y = x.
// Reference: src/lib/engine/train/reference.ts.

struct P {
  B: u32, d: u32, n: u32, k: u32,
  l1: f32, arch: u32, store_rows: u32, aux_k: u32,     // arch: 0 ReLU, 1 TopK, 2 JumpReLU; aux_k: dead latents per row this step (0: AuxK off)
  aux_weight: f32, dead_after: u32, l0: f32, bandwidth: f32, // α·min(dead/k_aux, 1); dead: no firing for > dead_after tokens; JumpReLU λ, ε
  scale: f32, m: u32, stride: u32, y_off: u32,         // x is read times `scale` (E‖x‖² = d_in); m = d_out; a store row is `stride` wide, y at y_off
  scale_out: f32, tc: u32, skip: u32, _d: u32,        // y is read times scale_out; tc: a transcoder; skip: W_skip in the forward
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
@group(0) @binding(11) var<storage, read_write> log_threshold: array<f32>; // [n] JumpReLU: log θ
@group(0) @binding(12) var<storage, read_write> w_skip: array<f32>; // [m, d] transcoders with a skip connection

@group(1) @binding(0) var<storage, read_write> g_w_enc: array<f32>;
@group(1) @binding(1) var<storage, read_write> g_b_enc: array<f32>;
@group(1) @binding(2) var<storage, read_write> g_w_dec: array<f32>;
@group(1) @binding(3) var<storage, read_write> g_b_dec: array<f32>;
@group(1) @binding(4) var<storage, read_write> dpre: array<f32>;  // [B, n]
@group(1) @binding(5) var<storage, read_write> stats: array<f32>; // [4, d] batch Σx, Σx², Σerr², Σaux_err²
@group(1) @binding(6) var<storage, read_write> sel: array<u32>;   // [B, k] TopK: the chosen latents
@group(1) @binding(7) var<storage, read_write> since_fired: array<u32>; // [n] tokens since each latent last fired
@group(1) @binding(8) var<storage, read_write> aux_sel: array<u32>;  // [B, aux_k] AuxK: the chosen dead latents
@group(1) @binding(9) var<storage, read_write> aux_acts: array<f32>; // [B, n] AuxK activations (0 but for aux_sel)
@group(1) @binding(10) var<storage, read_write> aux_err: array<f32>; // [B, d]
@group(1) @binding(11) var<storage, read_write> offsets: array<u32>;  // [n + 1] where each latent's live list starts
@group(1) @binding(12) var<storage, read_write> live: array<u32>;     // the rows each latent is live in, by latent
@group(1) @binding(13) var<storage, read_write> g_log_threshold: array<f32>; // [n]
@group(1) @binding(14) var<storage, read_write> dthr: array<f32>;    // [B, n] JumpReLU: each entry's ∂loss/∂θ (straight-through)
@group(1) @binding(15) var<storage, read_write> g_w_skip: array<f32>; // [m, d]

fn x(b: u32, i: u32) -> f32 { return store[rows[b] * p.stride + i] * p.scale; }
fn y(b: u32, i: u32) -> f32 { return store[rows[b] * p.stride + p.y_off + i] * p.scale_out; }
// What is subtracted from the input: an SAE's b_dec; nothing for a transcoder (its b_dec is m wide).
fn centre(i: u32) -> f32 { if (p.tc == 1u) { return 0.0; } return b_dec[i]; }

// Dispatch (ceil(n/256), ceil(B/4)): pre[b0..b0+3, j0..j0+3], a 4×4 tile per thread, so each value
// loaded from the batch or from W_enc serves four multiply-adds.
@compute @workgroup_size(64)
fn encode(@builtin(global_invocation_id) g: vec3u) {
  let j0 = g.x * 4u; let b0 = g.y * 4u;
  if (j0 >= p.n || b0 >= p.B) { return; }
  var base = vec4u(0u);
  for (var r = 0u; r < 4u; r++) { base[r] = rows[min(b0 + r, p.B - 1u)] * p.stride; }
  var bias = vec4f(0.0);
  for (var c = 0u; c < 4u; c++) { if (j0 + c < p.n) { bias[c] = b_enc[j0 + c]; } }
  var acc: array<vec4f, 4>; // acc[r]: latents j0..j0+3 of row b0+r
  for (var r = 0u; r < 4u; r++) { acc[r] = bias; }
  let full = j0 + 3u < p.n;
  for (var i = 0u; i < p.d; i++) {
    var w = vec4f(0.0);
    let wi = i * p.n + j0;
    if (full) { w = vec4f(w_enc[wi], w_enc[wi + 1u], w_enc[wi + 2u], w_enc[wi + 3u]); }
    else { for (var c = 0u; c < 4u; c++) { if (j0 + c < p.n) { w[c] = w_enc[wi + c]; } } }
    let c0 = centre(i);
    for (var r = 0u; r < 4u; r++) { acc[r] += (store[base[r] + i] * p.scale - c0) * w; }
  }
  for (var r = 0u; r < 4u; r++) {
    if (b0 + r >= p.B) { break; }
    for (var c = 0u; c < 4u; c++) { if (j0 + c < p.n) { pre[(b0 + r) * p.n + j0 + c] = acc[r][c]; } }
  }
}

// TopK selection, one workgroup per row: the `want` largest pre-activations among the row's
// eligible latents (ties: lower index first), found as the k-th largest key by a radix select
// (4 passes of 8 bits, a 256-bin workgroup histogram each) instead of k rounds of argmax: about 16
// barriers whatever k is. Each thread owns a contiguous chunk of the row, so the chosen latents come
// out in index order and no atomic decides an order.
const NONE = 0xffffffffu;
var<workgroup> hist: array<atomic<u32>, 256>;
var<workgroup> radix: vec3u;             // the key prefix found so far, its mask, how many still wanted
var<workgroup> counts: array<vec2u, 64>; // per thread: (keys above the threshold, keys equal to it)
var<workgroup> starts: array<vec2u, 64>; // per thread: (its first slot in the list, its first equal rank)

// Floats as u32 keys in the same order (negative: all bits flipped; positive: sign bit set).
fn key_of(v: f32) -> u32 {
  let u = bitcast<u32>(v);
  return select(u | 0x80000000u, ~u, (u & 0x80000000u) != 0u);
}

// Main TopK: every latent. AuxK: dead latents not active in the row.
fn eligible(aux: bool, base: u32, j: u32) -> bool {
  return !aux || (since_fired[j] > p.dead_after && acts[base + j] == 0.0);
}

// Row b: writes the chosen latents to sel / aux_sel (NONE-padded to `want`) and the activations.
fn select_top(b: u32, t: u32, want: u32, aux: bool) {
  let base = b * p.n;
  let chunk = (p.n + 63u) / 64u;
  let j0 = min(p.n, t * chunk);
  let j1 = min(p.n, j0 + chunk);
  if (t == 0u) { radix = vec3u(0u, 0u, want); }
  for (var round = 0u; round < 4u; round++) {
    let shift = 24u - 8u * round;
    for (var h = t; h < 256u; h += 64u) { atomicStore(&hist[h], 0u); }
    workgroupBarrier();
    let r = radix;
    for (var j = j0; j < j1; j++) {
      if (!eligible(aux, base, j)) { continue; }
      let key = key_of(pre[base + j]);
      if ((key & r.y) == r.x) { atomicAdd(&hist[(key >> shift) & 255u], 1u); }
    }
    workgroupBarrier();
    if (t == 0u && radix.z > 0u) {
      var left = radix.z;
      var digit = NONE;
      for (var dg = 255i; dg >= 0i; dg--) {
        let c = atomicLoad(&hist[u32(dg)]);
        if (c >= left) { digit = u32(dg); break; }
        left -= c;
      }
      if (digit == NONE) { radix = vec3u(0u, 0u, 0u); } // fewer eligible than wanted: take them all
      else { radix = vec3u(radix.x | (digit << shift), radix.y | (255u << shift), left); }
    }
    workgroupBarrier();
  }
  let r = radix; // r.x: the want-th largest key; r.z: how many keys equal to it to take (0: all eligible)
  var above = 0u; var equal = 0u;
  for (var j = j0; j < j1; j++) {
    if (!eligible(aux, base, j)) { continue; }
    let key = key_of(pre[base + j]);
    if (r.z == 0u || key > r.x) { above++; } else if (key == r.x) { equal++; }
  }
  counts[t] = vec2u(above, equal);
  workgroupBarrier();
  if (t == 0u) {
    var slot = 0u; var rank = 0u;
    for (var u = 0u; u < 64u; u++) {
      starts[u] = vec2u(slot, rank);
      slot += counts[u].x + min(counts[u].y, r.z - min(r.z, rank));
      rank += counts[u].y;
    }
  }
  workgroupBarrier();
  var slot = starts[t].x; var rank = starts[t].y;
  let width = select(p.k, p.aux_k, aux);
  for (var j = j0; j < j1; j++) {
    var chosen = false;
    if (eligible(aux, base, j)) {
      let key = key_of(pre[base + j]);
      if (r.z == 0u || key > r.x) { chosen = true; }
      else if (key == r.x) { chosen = rank < r.z; rank++; }
    }
    let a = select(0.0, max(pre[base + j], 0.0), chosen);
    if (aux) { aux_acts[base + j] = a; } else { acts[base + j] = a; }
    if (chosen) {
      if (aux) { aux_sel[b * width + slot] = j; } else { sel[b * width + slot] = j; }
      slot++;
    }
  }
  workgroupBarrier();
  // Fewer eligible latents than wanted: pad the list.
  if (t == 0u) {
    var total = 0u;
    for (var u = 0u; u < 64u; u++) { total += counts[u].x + min(counts[u].y, r.z - min(r.z, starts[u].y)); }
    for (var s = total; s < want; s++) { if (aux) { aux_sel[b * width + s] = NONE; } else { sel[b * width + s] = NONE; } }
  }
}

// Dispatch (B): ReLU; TopK (the k largest, then ReLU); JumpReLU (pre where pre > θ, else 0).
@compute @workgroup_size(64)
fn activate(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let b = wg.x;
  if (p.arch == 0u) {
    for (var j = t; j < p.n; j += 64u) { acts[b * p.n + j] = max(pre[b * p.n + j], 0.0); }
  } else if (p.arch == 2u) {
    for (var j = t; j < p.n; j += 64u) { let v = pre[b * p.n + j]; acts[b * p.n + j] = select(0.0, v, v > exp(log_threshold[j])); }
  } else {
    select_top(b, t, p.k, false);
  }
}

// Dispatch (B), TopK with AuxK, after activate: per row, the aux_k largest pre-activations among dead
// latents that are not active in the row (the chosen ones' activations go to aux_acts, the rest 0).
@compute @workgroup_size(64)
fn activate_aux(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  select_top(wg.x, t, p.aux_k, true);
}

// Dispatch (ceil(m/64), B), after decode: aux_err[b, i] = Σ_r aux_acts W_dec[aux_sel] + err (no b_dec).
@compute @workgroup_size(64)
fn decode_aux(@builtin(global_invocation_id) g: vec3u) {
  let i = g.x; let b = g.y;
  if (i >= p.m || b >= p.B) { return; }
  var a = err[b * p.m + i];
  for (var r = 0u; r < p.aux_k; r++) {
    let j = aux_sel[b * p.aux_k + r];
    if (j != NONE) { a += aux_acts[b * p.n + j] * w_dec[j * p.m + i]; }
  }
  aux_err[b * p.m + i] = a;
}

// Dispatch (ceil(aux_k/64), B), after grad_pre: the AuxK gradient into the chosen dead latents'
// pre-activations. Within a row the chosen latents are distinct and not active, so no two threads
// write one entry and the main gradient there is 0.
@compute @workgroup_size(64)
fn grad_pre_aux(@builtin(global_invocation_id) g: vec3u) {
  let r = g.x; let b = g.y;
  if (r >= p.aux_k || b >= p.B) { return; }
  let j = aux_sel[b * p.aux_k + r];
  if (j == NONE || aux_acts[b * p.n + j] <= 0.0) { return; }
  var a = 0.0;
  for (var i = 0u; i < p.m; i++) { a += aux_err[b * p.m + i] * w_dec[j * p.m + i]; }
  dpre[b * p.n + j] += a * 2.0 * p.aux_weight / f32(p.B);
}

// Dispatch (ceil(m/64), B): err[b, i] = x̂ − x (a transcoder: ŷ − y, with x W_skipᵀ where it has
// one). TopK reads only the k chosen rows of W_dec.
@compute @workgroup_size(64)
fn decode(@builtin(global_invocation_id) g: vec3u) {
  let i = g.x; let b = g.y;
  if (i >= p.m || b >= p.B) { return; }
  var a = b_dec[i];
  if (p.arch == 1u) {
    for (var r = 0u; r < p.k; r++) {
      let j = sel[b * p.k + r];
      if (j < p.n) { a += acts[b * p.n + j] * w_dec[j * p.m + i]; }
    }
  } else {
    for (var j = 0u; j < p.n; j++) {
      let s = acts[b * p.n + j];
      if (s != 0.0) { a += s * w_dec[j * p.m + i]; }
    }
  }
  if (p.skip == 1u) { for (var k = 0u; k < p.d; k++) { a += w_skip[i * p.d + k] * x(b, k); } }
  err[b * p.m + i] = a - y(b, i);
}

// Dispatch (ceil(n/64)): ‖W_dec[j]‖.
@compute @workgroup_size(64)
fn decoder_norms(@builtin(global_invocation_id) g: vec3u) {
  let j = g.x;
  if (j >= p.n) { return; }
  var a = 0.0;
  for (var i = 0u; i < p.m; i++) { let w = w_dec[j * p.m + i]; a += w * w; }
  norms[j] = sqrt(a);
}

// Dispatch (ceil(n/64), B): ∂loss/∂pre, through the gate (acts > 0). JumpReLU also needs ∂loss/∂acts
// where pre is within ε/2 of θ, active or not: that entry's straight-through ∂loss/∂θ goes to dthr.
@compute @workgroup_size(64)
fn grad_pre(@builtin(global_invocation_id) g: vec3u) {
  let j = g.x; let b = g.y;
  if (j >= p.n || b >= p.B) { return; }
  let fires = acts[b * p.n + j] > 0.0;
  var th = 0.0; var window = false;
  if (p.arch == 2u) { th = exp(log_threshold[j]); window = abs(pre[b * p.n + j] - th) < 0.5 * p.bandwidth; }
  var dacts = 0.0;
  if (fires || window) {
    for (var i = 0u; i < p.m; i++) { dacts += err[b * p.m + i] * w_dec[j * p.m + i]; }
    dacts *= 2.0 / f32(p.B);
  }
  dpre[b * p.n + j] = select(0.0, dacts + p.l1 / f32(p.B) * norms[j], fires);
  if (p.arch == 2u) {
    dthr[b * p.n + j] = select(0.0, -th / p.bandwidth * dacts - p.l0 / (f32(p.B) * p.bandwidth), window);
  }
}

// Dispatch (ceil(n/64)), JumpReLU: ∂loss/∂log θ_j = θ_j Σ_b dthr[b, j].
@compute @workgroup_size(64)
fn grad_threshold(@builtin(global_invocation_id) g: vec3u) {
  let j = g.x;
  if (j >= p.n) { return; }
  var a = 0.0;
  for (var b = 0u; b < p.B; b++) { a += dthr[b * p.n + j]; }
  g_log_threshold[j] = exp(log_threshold[j]) * a;
}

// The weight gradients sum, for each latent, over the rows where it is live: active, or recruited by
// AuxK. Those rows are gathered per latent into one list (`live`, where latent j's entries run from
// offsets[j] to offsets[j+1], in row order), so a gradient thread visits B·k/n rows on average instead
// of B, and no float atomics are needed:
//   grad_b_enc (counts) → scan_offsets → fill_live → grad_w_dec(_topk), grad_w_enc
const AUX = 0x80000000u; // a `live` entry: the row, with this bit where the latent is an AuxK recruit

fn live_in(b: u32, j: u32) -> bool {
  return acts[b * p.n + j] > 0.0 || (p.aux_k > 0u && aux_acts[b * p.n + j] > 0.0);
}

// Dispatch (ceil(n/64)): ∂loss/∂b_enc[j] = Σ_b dpre; in the same pass over the batch, the dead-latent
// clock (tokens since latent j last fired; 0 if it fired in this batch) and j's live-row count.
@compute @workgroup_size(64)
fn grad_b_enc(@builtin(global_invocation_id) g: vec3u) {
  let j = g.x;
  if (j >= p.n) { return; }
  var a = 0.0;
  var fired = false;
  var count = 0u;
  for (var b = 0u; b < p.B; b++) {
    a += dpre[b * p.n + j];
    fired = fired || acts[b * p.n + j] > 0.0;
    if (live_in(b, j)) { count++; }
  }
  g_b_enc[j] = a;
  since_fired[j] = select(min(since_fired[j], 0x7fffffffu - p.B) + p.B, 0u, fired);
  offsets[j] = count;
}

// Dispatch (1): the counts in offsets[0..n) become their exclusive prefix sums; offsets[n] the total.
var<workgroup> partial: array<u32, 64>;
@compute @workgroup_size(64)
fn scan_offsets(@builtin(local_invocation_index) t: u32) {
  let chunk = (p.n + 63u) / 64u;
  let j0 = min(p.n, t * chunk);
  let j1 = min(p.n, j0 + chunk);
  var sum = 0u;
  for (var j = j0; j < j1; j++) { sum += offsets[j]; }
  partial[t] = sum;
  workgroupBarrier();
  if (t == 0u) {
    var run = 0u;
    for (var u = 0u; u < 64u; u++) { let c = partial[u]; partial[u] = run; run += c; }
    offsets[p.n] = run;
  }
  workgroupBarrier();
  var run = partial[t];
  for (var j = j0; j < j1; j++) { let c = offsets[j]; offsets[j] = run; run += c; }
}

// Dispatch (ceil(n/64)): latent j's live rows, in row order.
@compute @workgroup_size(64)
fn fill_live(@builtin(global_invocation_id) g: vec3u) {
  let j = g.x;
  if (j >= p.n) { return; }
  var e = offsets[j];
  for (var b = 0u; b < p.B; b++) {
    if (live_in(b, j)) { live[e] = b | select(0u, AUX, acts[b * p.n + j] <= 0.0); e++; }
  }
}

// Dispatch (ceil(m/64), n), ReLU: ∂loss/∂W_dec[j, i] = (2/B) Σ_b acts err + (λ/B) Σ_b acts · W_dec[j,i]/‖W_dec[j]‖.
@compute @workgroup_size(64)
fn grad_w_dec(@builtin(global_invocation_id) g: vec3u) {
  let i = g.x; let j = g.y;
  if (i >= p.m || j >= p.n) { return; }
  var a = 0.0; var s = 0.0;
  for (var e = offsets[j]; e < offsets[j + 1u]; e++) {
    let b = live[e];
    let v = acts[b * p.n + j];
    a += v * err[b * p.m + i]; s += v;
  }
  var out = a * 2.0 / f32(p.B);
  if (p.l1 > 0.0 && norms[j] > 0.0) { out += p.l1 / f32(p.B) * s * w_dec[j * p.m + i] / norms[j]; }
  g_w_dec[j * p.m + i] = out;
}

// Dispatch (ceil(m/64), n), TopK: ∂loss/∂W_dec[j, i] = (2/B) (Σ_b acts err + α·scale Σ_b aux_acts aux_err).
// A separate entry point from ReLU's: one kernel for both would bind 9 storage buffers (the limit is 8).
@compute @workgroup_size(64)
fn grad_w_dec_topk(@builtin(global_invocation_id) g: vec3u) {
  let i = g.x; let j = g.y;
  if (i >= p.m || j >= p.n) { return; }
  var a = 0.0; var a_aux = 0.0;
  for (var e = offsets[j]; e < offsets[j + 1u]; e++) {
    let entry = live[e];
    let b = entry & ~AUX;
    if ((entry & AUX) == 0u) { a += acts[b * p.n + j] * err[b * p.m + i]; }
    else { a_aux += aux_acts[b * p.n + j] * aux_err[b * p.m + i]; }
  }
  g_w_dec[j * p.m + i] = (a + p.aux_weight * a_aux) * 2.0 / f32(p.B);
}

// Dispatch (ceil(n/64), d): ∂loss/∂W_enc[i, j] = Σ_b (x − b_dec)_bi dpre_bj over j's live rows.
@compute @workgroup_size(64)
fn grad_w_enc(@builtin(global_invocation_id) g: vec3u) {
  let j = g.x; let i = g.y;
  if (j >= p.n || i >= p.d) { return; }
  var a = 0.0;
  let c = centre(i);
  for (var e = offsets[j]; e < offsets[j + 1u]; e++) {
    let b = live[e] & ~AUX;
    a += (x(b, i) - c) * dpre[b * p.n + j];
  }
  g_w_enc[i * p.n + j] = a;
}

// Dispatch (ceil(m/64)), after grad_b_enc: ∂loss/∂b_dec[i] = (2/B) Σ_b err − Σ_j g_b_enc[j] W_enc[i, j]
// (the second term: an SAE only, whose input is x − b_dec).
@compute @workgroup_size(64)
fn grad_b_dec(@builtin(global_invocation_id) g: vec3u) {
  let i = g.x;
  if (i >= p.m) { return; }
  var a = 0.0;
  for (var b = 0u; b < p.B; b++) { a += err[b * p.m + i]; }
  a = a * 2.0 / f32(p.B);
  if (p.tc == 0u) { for (var j = 0u; j < p.n; j++) { a -= g_b_enc[j] * w_enc[i * p.n + j]; } }
  g_b_dec[i] = a;
}

// Dispatch (ceil(d/64), m), transcoders with a skip connection: ∂loss/∂W_skip[o, k] = (2/B) Σ_b err[b, o] x[b, k].
@compute @workgroup_size(64)
fn grad_w_skip(@builtin(global_invocation_id) g: vec3u) {
  let k = g.x; let o = g.y;
  if (k >= p.d || o >= p.m) { return; }
  var a = 0.0;
  for (var b = 0u; b < p.B; b++) { a += err[b * p.m + o] * x(b, k); }
  g_w_skip[o * p.d + k] = a * 2.0 / f32(p.B);
}

// Dispatch (ceil(n/64)), after an Adam step on W_dec (TopK): rows back to unit norm.
@compute @workgroup_size(64)
fn normalize_rows(@builtin(global_invocation_id) g: vec3u) {
  let j = g.x;
  if (j >= p.n) { return; }
  var a = 0.0;
  for (var i = 0u; i < p.m; i++) { let w = w_dec[j * p.m + i]; a += w * w; }
  let s = select(1.0, 1.0 / sqrt(a), a > 0.0);
  for (var i = 0u; i < p.m; i++) { w_dec[j * p.m + i] *= s; }
}

// Dispatch (ceil(stride/64)): per column of a store row (a transcoder's: x then y), Σ and Σ² over the
// whole store, unscaled, into stats[0..2·stride) (for a new run's scales, E‖x‖² = d_in (and
// E‖y‖² = d_out), and b_dec's initialisation, the mean of what is decoded).
@compute @workgroup_size(64)
fn store_sums(@builtin(global_invocation_id) g: vec3u) {
  let i = g.x;
  if (i >= p.stride) { return; }
  var s1 = 0.0; var s2 = 0.0;
  for (var r = 0u; r < p.store_rows; r++) { let v = store[r * p.stride + i]; s1 += v; s2 += v * v; }
  stats[i] = s1; stats[p.stride + i] = s2;
}

// Dispatch (ceil(m/64)), after decode: per dimension of the target, the batch's Σy, Σy² and Σerr² (for
// MSE and explained variance without reading the batch back).
@compute @workgroup_size(64)
fn batch_stats(@builtin(global_invocation_id) g: vec3u) {
  let i = g.x;
  if (i >= p.m) { return; }
  var s1 = 0.0; var s2 = 0.0; var se = 0.0; var sa = 0.0;
  for (var b = 0u; b < p.B; b++) {
    let v = y(b, i); let e = err[b * p.m + i];
    s1 += v; s2 += v * v; se += e * e;
    if (p.aux_k > 0u) { let ea = aux_err[b * p.m + i]; sa += ea * ea; }
  }
  stats[i] = s1; stats[p.m + i] = s2; stats[2u * p.m + i] = se; stats[3u * p.m + i] = sa;
}

// Logits post-processing for sampling, on chosen rows of the model's logits (one row per sequence
// of a batch: side by side reads two at once, so two rows cost one dispatch and one read-back).
// For workgroup r (the r-th row processed), with row = row_offset + r * row_stride (in floats):
//   out[r*2V + i]      = (logits[row + i] - freq_penalty * counts[r*V + i]) * inv_temperature
//   out[r*2V + V + i]  = softmax of the above
// inv_temperature is 1 when temperature is 0 (greedy reads the processed logits, not the probs).
//
// Dispatch: (rows, 1, 1) — one workgroup of 256 threads per row strides over the vocabulary, and
// reduces max and sum in workgroup memory. Vocabularies are 512 to 262k: one pass per thread of V/256.

struct Params {
  vocab: u32,
  row_offset: u32,       // in floats: the first row to read of the [B*S, V] logits
  row_stride: u32,       // in floats: from one processed row to the next
  inv_temperature: f32,
  freq_penalty: f32,
}

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> counts: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

// WG, workgroup_max and workgroup_sum: workgroup_reduce.wgsl, prepended by the runner.

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let V = params.vocab;
  let r = wid.x;
  let src = params.row_offset + r * params.row_stride;
  let cnt = r * V;
  let dst = r * 2u * V;

  var m = -3.402823e38;
  for (var i = lid; i < V; i += WG) {
    let x = (logits[src + i] - params.freq_penalty * f32(counts[cnt + i])) * params.inv_temperature;
    out[dst + i] = x;
    m = max(m, x);
  }
  let row_max = workgroup_max(lid, m);

  var sum = 0.0;
  for (var i = lid; i < V; i += WG) {
    let e = exp(out[dst + i] - row_max);
    out[dst + V + i] = e;
    sum += e;
  }
  let inv_sum = 1.0 / workgroup_sum(lid, sum);

  for (var i = lid; i < V; i += WG) {
    out[dst + V + i] = out[dst + V + i] * inv_sum;
  }
}

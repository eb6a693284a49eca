// Logits post-processing for sampling, on one row of the model's logits.
//   out[0..V)   = (logits[row + i] - freq_penalty * counts[i]) * inv_temperature   (processed logits)
//   out[V..2V)  = softmax of the above                                            (probabilities)
// inv_temperature is 1 when temperature is 0 (greedy reads the processed logits, not the probs).
//
// Dispatch: (1, 1, 1) — one workgroup of 256 threads strides over the vocabulary, and reduces
// max and sum in workgroup memory. Vocabularies are 512 to 262k: one pass per thread of V/256.

struct Params {
  vocab: u32,
  row_offset: u32,       // in floats: which row of the [B*S, V] logits to read
  inv_temperature: f32,
  freq_penalty: f32,
}

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> counts: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

// WG, workgroup_max and workgroup_sum: workgroup_reduce.wgsl, prepended by the runner.

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32) {
  let V = params.vocab;

  var m = -3.402823e38;
  for (var i = lid; i < V; i += WG) {
    let x = (logits[params.row_offset + i] - params.freq_penalty * f32(counts[i])) * params.inv_temperature;
    out[i] = x;
    m = max(m, x);
  }
  let row_max = workgroup_max(lid, m);

  var sum = 0.0;
  for (var i = lid; i < V; i += WG) {
    let e = exp(out[i] - row_max);
    out[V + i] = e;
    sum += e;
  }
  let inv_sum = 1.0 / workgroup_sum(lid, sum);

  for (var i = lid; i < V; i += WG) {
    out[V + i] = out[V + i] * inv_sum;
  }
}

// Cosine similarity of one feature's decoder row with every row of one chunk of W_dec:
//   out[offset + r] = (w_dec[r] · d) / (|w_dec[r]| · |d|),   r < rows
// d = W_dec[f]. A zero row gets similarity 0.
//
// Dispatch: (ceil(rows / 64), 1, 1) — one thread per decoder row, one pass over d_in.

struct Params {
  rows: u32,
  d_in: u32,
  offset: u32,
  _pad0: u32,
}

@group(0) @binding(0) var<storage, read> w_dec: array<f32>;
@group(0) @binding(1) var<storage, read> d: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let r = gid.x;
  if (r >= p.rows) { return; }
  var dot = 0.0;
  var nr = 0.0;
  var nd = 0.0;
  for (var i = 0u; i < p.d_in; i++) {
    let a = w_dec[r * p.d_in + i];
    let b = d[i];
    dot += a * b;
    nr += a * a;
    nd += b * b;
  }
  let denom = sqrt(nr) * sqrt(nd);
  out[p.offset + r] = select(0.0, dot / denom, denom > 0.0);
}

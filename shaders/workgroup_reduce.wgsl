// Shared by the kernels that give one row to a workgroup of WG = 256 threads (logits_process,
// sae_preprocess, recon_metrics): tree reductions over the workgroup, prepended to the kernel's
// own text by its runner (gpu/wgsl-headers.ts). Every thread must call them (barriers), and
// each returns the same value to all threads; the trailing barrier lets the scratch be reused.

const WG: u32 = 256u;
var<workgroup> red: array<f32, WG>;
var<workgroup> red4: array<vec4f, WG>;

// The sum (or, with take_max, the maximum) of every thread's v.
fn workgroup_reduce(lid: u32, v: f32, take_max: bool) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] = select(red[lid] + red[lid + s], max(red[lid], red[lid + s]), take_max); }
    workgroupBarrier();
  }
  let total = red[0];
  workgroupBarrier();
  return total;
}

fn workgroup_sum(lid: u32, v: f32) -> f32 { return workgroup_reduce(lid, v, false); }
fn workgroup_max(lid: u32, v: f32) -> f32 { return workgroup_reduce(lid, v, true); }

fn workgroup_sum4(lid: u32, v: vec4f) -> vec4f {
  red4[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { red4[lid] = red4[lid] + red4[lid + s]; }
    workgroupBarrier();
  }
  let total = red4[0];
  workgroupBarrier();
  return total;
}

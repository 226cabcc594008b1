/**
 * Workgroup-wide reductions of one f32 per invocation. With subgroups (and a verified
 * contiguous lane layout, see WebGPUBackend.subgroupSize) each subgroup reduces in registers
 * and only one partial per subgroup goes through workgroup memory; otherwise a tree in
 * workgroup memory. Call from uniform control flow; every invocation gets the result.
 */
export type WgReduceOp = 'sum' | 'max' | 'min'

export function wgReduceWgsl(wg: number, subgroupSize: number, ops: readonly WgReduceOp[]): string {
  const useSub = subgroupSize > 0 && wg % subgroupSize === 0 && wg / subgroupSize <= wg
  const slots = useSub ? wg / subgroupSize : wg
  const lines = [`var<workgroup> wg_red: array<f32, ${slots}>;`]
  for (const op of ops) {
    const combine =
      op === 'sum' ? (a: string, b: string) => `${a} + ${b}` : (a: string, b: string) => `${op}(${a}, ${b})`
    const sub = op === 'sum' ? 'subgroupAdd' : op === 'max' ? 'subgroupMax' : 'subgroupMin'
    if (useSub) {
      lines.push(`fn wg_${op}(v: f32, lid: u32) -> f32 {
  let s = ${sub}(v);
  if (lid % ${subgroupSize}u == 0u) { wg_red[lid / ${subgroupSize}u] = s; }
  workgroupBarrier();
  var r = wg_red[0];
  for (var k = 1u; k < ${slots}u; k++) { r = ${combine('r', 'wg_red[k]')}; }
  workgroupBarrier();
  return r;
}`)
    } else {
      lines.push(`fn wg_${op}(v: f32, lid: u32) -> f32 {
  wg_red[lid] = v;
  workgroupBarrier();
  for (var s = ${wg / 2}u; s > 0u; s = s >> 1u) {
    if (lid < s) { wg_red[lid] = ${combine('wg_red[lid]', 'wg_red[lid + s]')}; }
    workgroupBarrier();
  }
  let r = wg_red[0];
  workgroupBarrier();
  return r;
}`)
    }
  }
  return lines.join('\n')
}

/** WGSL that checks the lane layout wgReduceWgsl relies on (see probeSubgroups). */
export const SUBGROUP_PROBE = `enable subgroups;
@group(0) @binding(0) var<storage, read_write> out: array<u32>;
@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(subgroup_invocation_id) sid: u32,
        @builtin(subgroup_size) ssize: u32) {
  let first = subgroupBroadcastFirst(lid);
  let total = subgroupAdd(1u);
  out[lid * 4u] = sid;
  out[lid * 4u + 1u] = ssize;
  out[lid * 4u + 2u] = first;
  out[lid * 4u + 3u] = total;
}`

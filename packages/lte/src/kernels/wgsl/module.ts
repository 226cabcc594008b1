/**
 * Assembles a WGSL compute module under core's ProgramSpec binding convention: inputs as
 * read-only storage at bindings 0..n-1, outputs read_write at n..n+m-1, scalars in one uniform
 * struct at n+m (4 bytes each, declaration order). One module per entry point.
 */
export interface WgslKernel {
  inputs: readonly (string | [string, 'f32' | 'i32'])[]
  outputs: readonly string[]
  scalars: readonly [string, 'u32' | 'f32' | 'i32'][]
  /** Statements of the entry point; `tid`, `wg` (workgroup id) and `nwg` are in scope. */
  body: string
  /** Module-scope declarations (workgroup arrays, helpers). */
  decls?: string
}

export function wgslModule(entry: string, k: WgslKernel, constants: Record<string, number>): string {
  const lines: string[] = []
  for (const [name, v] of Object.entries(constants)) lines.push(`const ${name}: u32 = ${v}u;`)
  let b = 0
  for (const inp of k.inputs) {
    const [name, type] = typeof inp === 'string' ? [inp, 'f32'] : inp
    lines.push(`@group(0) @binding(${b++}) var<storage, read> ${name}: array<${type}>;`)
  }
  for (const out of k.outputs)
    lines.push(`@group(0) @binding(${b++}) var<storage, read_write> ${out}: array<f32>;`)
  if (k.scalars.length) {
    lines.push(`struct Params { ${k.scalars.map(([n, t]) => `${n}: ${t}`).join(', ')} }`)
    lines.push(`@group(0) @binding(${b}) var<uniform> params: Params;`)
  }
  if (k.decls) lines.push(k.decls)
  lines.push(
    `@compute @workgroup_size(256)\nfn ${entry}(@builtin(local_invocation_index) tid: u32, @builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {`,
    k.body,
    '}',
  )
  return lines.join('\n')
}

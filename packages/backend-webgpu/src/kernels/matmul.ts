import { broadcastShapes, registerCoreKernel, sizeOf, type TensorInfo } from '@attnkit/core'
import type { WebGPUBackend } from '../backend.js'
import {
  bindingsWgsl,
  broadcastStridesFor,
  type Operand,
  operand,
  Params,
  prelude,
  stagedOutput,
} from './common.js'

/**
 * Tile shape of the fast f32 kernel: BM x BN outputs per workgroup of (BM/TM)(BN/TN)
 * invocations, each holding a TM x TN register block, K consumed BK at a time through
 * workgroup memory. 128x128x16 with 8x8 blocks measured 35.9 TFLOP/s on the H100 with Dawn's
 * robustness on and 35.5 with it off (bench/results); overridable for tuning.
 */
export interface MatmulTile {
  BM: number
  BN: number
  BK: number
  TM: number
  TN: number
}

export const FAST_TILE: MatmulTile = { BM: 128, BN: 128, BK: 16, TM: 8, TN: 8 }

interface MatmulGeometry {
  M: number
  N: number
  K: number
  batch: number
  batchShape: number[]
  aBatchStrides: number[]
  bBatchStrides: number[]
  tA: boolean
  tB: boolean
}

function geometry(a: TensorInfo, b: TensorInfo, tA: boolean, tB: boolean): MatmulGeometry {
  const ra = a.shape.length
  const rb = b.shape.length
  const [aRows, aCols] = [a.shape[ra - 2], a.shape[ra - 1]]
  const [bRows, bCols] = [b.shape[rb - 2], b.shape[rb - 1]]
  const M = tA ? aCols : aRows
  const K = tA ? aRows : aCols
  const N = tB ? bRows : bCols
  const batchShape = broadcastShapes('matmul', a.shape.slice(0, -2), b.shape.slice(0, -2))
  return {
    M,
    N,
    K,
    batch: sizeOf(batchShape),
    batchShape,
    aBatchStrides: broadcastStridesFor(a.shape.slice(0, -2), batchShape).map((s) => s * aRows * aCols),
    bBatchStrides: broadcastStridesFor(b.shape.slice(0, -2), batchShape).map((s) => s * bRows * bCols),
    tA,
    tB,
  }
}

/** Uniform words shared by both kernels: M, N, K, batch base, batch shape and strides. */
function matmulParams(g: MatmulGeometry, batchBase: number): { params: Params; rank: number } {
  const params = new Params()
  params.array([g.M, g.N, g.K, batchBase])
  params.array(g.batchShape)
  params.array(g.aBatchStrides)
  params.array(g.bBatchStrides)
  return { params, rank: g.batchShape.length }
}

/** Like batchOffsetsWgsl with the rank read at run time (uniform word `rankAt`): fewer variants. */
function batchOffsetsDynamicWgsl(rankAt: number): string {
  return `  var offA = 0u;
  var offB = 0u;
  let rank = P(${rankAt}u);
  var rem = batch;
  for (var d = i32(rank) - 1; d >= 0; d--) {
    let du = u32(d);
    let c = rem % P(4u + du); rem = rem / P(4u + du);
    offA += c * P(4u + rank + du); offB += c * P(4u + 2u * rank + du);
  }
  let offC = batch * M * N;`
}

/** WGSL computing offA, offB, offC for batch index `batch` (uniform words from matmulParams). */
function batchOffsetsWgsl(rank: number): string {
  const lines = ['  var offA = 0u;', '  var offB = 0u;', '  { var rem = batch;']
  for (let d = rank - 1; d >= 0; d--) {
    lines.push(
      `    let c${d} = rem % P(${4 + d}u); rem = rem / P(${4 + d}u);`,
      `    offA += c${d} * P(${4 + rank + d}u); offB += c${d} * P(${4 + 2 * rank + d}u);`,
    )
  }
  lines.push('  }', '  let offC = batch * M * N;')
  return lines.join('\n')
}

/** Can the fast kernel run these shapes (whole tiles, f32 in and out)? */
export function fastMatmulApplies(
  b: WebGPUBackend,
  g: { M: number; N: number; K: number },
  dtypes: string[],
  tile = FAST_TILE,
): boolean {
  return (
    dtypes.every((d) => d === 'float32') &&
    g.M % tile.BM === 0 &&
    g.N % tile.BN === 0 &&
    g.K % tile.BK === 0 &&
    tile.BK % 4 === 0 &&
    (tile.BM / tile.TM) * (tile.BN / tile.TN) <= b.limits.maxComputeInvocationsPerWorkgroup
  )
}

/**
 * The fast kernel: vec4 global loads (prefetched into registers while the current tile is
 * multiplied), tiles in workgroup memory, and a TM x TN register block per invocation split
 * into 4-wide column/row groups spread across the tile (conflict-free vec4 reads).
 */
function fastWgsl(t: MatmulTile, tA: boolean, tB: boolean, rank: number, nUniform: number): string {
  const { BM, BN, BK, TM, TN } = t
  const TX = BN / TN
  const TY = BM / TM
  const NT = TX * TY
  const GM = TM / 4 // row groups of 4 per invocation
  const GN = TN / 4
  const aVecs = (BM * BK) / 4
  const bVecs = (BN * BK) / 4
  const aPer = Math.ceil(aVecs / NT)
  const bPer = Math.ceil(bVecs / NT)
  // Global vec4 index and workgroup-memory placement of the e-th vec4 of each tile.
  const aLoad = tA
    ? // A stored [K][M]: a tile row is one k, BM/4 vec4 along m; stored as is.
      {
        idx: `offA / 4u + (k0 + e / ${BM / 4}u) * (M / 4u) + m0 / 4u + e % ${BM / 4}u`,
        store: (v: string) => `As[e] = ${v};`,
      }
    : {
        idx: `offA / 4u + (m0 + e / ${BK / 4}u) * (K / 4u) + k0 / 4u + e % ${BK / 4}u`,
        store: (v: string) =>
          `{ let r = e / ${BK / 4}u; let kq = (e % ${BK / 4}u) * 4u; let w = ${v};` +
          ` for (var c = 0u; c < 4u; c++) { As[((kq + c) * ${BM}u + r) / 4u][r % 4u] = w[c]; } }`,
      }
  const bLoad = tB
    ? {
        idx: `offB / 4u + (n0 + e / ${BK / 4}u) * (K / 4u) + k0 / 4u + e % ${BK / 4}u`,
        store: (v: string) =>
          `{ let r = e / ${BK / 4}u; let kq = (e % ${BK / 4}u) * 4u; let w = ${v};` +
          ` for (var c = 0u; c < 4u; c++) { Bs[((kq + c) * ${BN}u + r) / 4u][r % 4u] = w[c]; } }`,
      }
    : {
        idx: `offB / 4u + (k0 + e / ${BN / 4}u) * (N / 4u) + n0 / 4u + e % ${BN / 4}u`,
        store: (v: string) => `Bs[e] = ${v};`,
      }
  const loads = (kExpr: string, into: string) => {
    const lines: string[] = []
    for (let s = 0; s < aPer; s++) {
      lines.push(
        `  { let e = lid + ${s * NT}u; if (e < ${aVecs}u) { let k0 = ${kExpr}; ${into}a${s} = A[${aLoad.idx}]; } }`,
      )
    }
    for (let s = 0; s < bPer; s++) {
      lines.push(
        `  { let e = lid + ${s * NT}u; if (e < ${bVecs}u) { let k0 = ${kExpr}; ${into}b${s} = B[${bLoad.idx}]; } }`,
      )
    }
    return lines.join('\n')
  }
  const stores = () => {
    const lines: string[] = []
    for (let s = 0; s < aPer; s++)
      lines.push(`  { let e = lid + ${s * NT}u; if (e < ${aVecs}u) { ${aLoad.store(`pa${s}`)} } }`)
    for (let s = 0; s < bPer; s++)
      lines.push(`  { let e = lid + ${s * NT}u; if (e < ${bVecs}u) { ${bLoad.store(`pb${s}`)} } }`)
    return lines.join('\n')
  }
  const inner: string[] = []
  for (let k = 0; k < BK; k++) {
    inner.push('    {')
    for (let gi = 0; gi < GM; gi++)
      inner.push(`    let a${gi} = As[(${k * BM}u + ${gi * (BM / GM)}u + ty * 4u) / 4u];`)
    for (let gj = 0; gj < GN; gj++)
      inner.push(`    let b${gj} = Bs[(${k * BN}u + ${gj * (BN / GN)}u + tx * 4u) / 4u];`)
    for (let gi = 0; gi < GM; gi++)
      for (let r = 0; r < 4; r++)
        for (let gj = 0; gj < GN; gj++) {
          const acc = `acc[${(gi * 4 + r) * GN + gj}]`
          inner.push(`    ${acc} = fma(vec4<f32>(a${gi}[${r}]), b${gj}, ${acc});`)
        }
    inner.push('    }')
  }
  const outStores: string[] = []
  for (let gi = 0; gi < GM; gi++)
    for (let r = 0; r < 4; r++)
      for (let gj = 0; gj < GN; gj++) {
        outStores.push(
          `  C[(offC + (m0 + ${gi * (BM / GM)}u + ty * 4u + ${r}u) * N + n0 + ${gj * (BN / GN)}u + tx * 4u) / 4u] = acc[${(gi * 4 + r) * GN + gj}];`,
        )
      }
  const regDecl = [
    ...Array.from({ length: aPer }, (_, s) => `  var pa${s}: vec4<f32>;`),
    ...Array.from({ length: bPer }, (_, s) => `  var pb${s}: vec4<f32>;`),
  ].join('\n')
  return `${Params.decl(3, nUniform)}
@group(0) @binding(0) var<storage, read> A: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> B: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> C: array<vec4<f32>>;
var<workgroup> As: array<vec4<f32>, ${(BK * BM) / 4}>;
var<workgroup> Bs: array<vec4<f32>, ${(BK * BN) / 4}>;
@compute @workgroup_size(${NT})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let M = P(0u); let N = P(1u); let K = P(2u);
  let batch = wid.z + P(3u);
${batchOffsetsWgsl(rank)}
  let m0 = wid.y * ${BM}u;
  let n0 = wid.x * ${BN}u;
  let tx = lid % ${TX}u;
  let ty = lid / ${TX}u;
  var acc: array<vec4<f32>, ${TM * GN}>;
${regDecl}
${loads('0u', 'p')}
  for (var kt = 0u; kt < K; kt += ${BK}u) {
${stores()}
    workgroupBarrier();
    if (kt + ${BK}u < K) {
${loads(`kt + ${BK}u`, 'p')}
    }
${inner.join('\n')}
    workgroupBarrier();
  }
${outStores.join('\n')}
}`
}

/**
 * The general kernel: any dtype, any size, transposes folded into the tile loads, bounds
 * checked; 64x64 (or 32x32 for small outputs) tiles with a 4x4 (2x2) register block.
 */
function generalWgsl(
  b: WebGPUBackend,
  small: boolean,
  A: Operand,
  B: Operand,
  Cout: Operand,
  flagsAt: number,
  nUniform: number,
): string {
  const BM = small ? 32 : 64
  const BN = BM
  const BK = 16
  const TM = small ? 2 : 4
  const TN = TM
  const TX = BN / TN
  const NT = (BM / TM) * TX
  // On CPU adapters the register-block loops read their bounds from uniforms (not unrolled).
  const L = b.lean
    ? { BK: `P(${flagsAt + 3}u)`, TM: `P(${flagsAt + 4}u)`, TN: `P(${flagsAt + 5}u)` }
    : { BK: `${BK}u`, TM: `${TM}u`, TN: `${TN}u` }
  return `${prelude(b)}
${Params.decl(3, nUniform)}
${bindingsWgsl(b, [A, B], [Cout])}
var<workgroup> As: array<f32, ${BK * BM}>;
var<workgroup> Bs: array<f32, ${BK * BN}>;
@compute @workgroup_size(${NT})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let M = P(0u); let N = P(1u); let K = P(2u);
  let batch = wid.z + P(3u);
${batchOffsetsDynamicWgsl(flagsAt + 2)}
  let tA = P(${flagsAt}u) != 0u;
  let tB = P(${flagsAt + 1}u) != 0u;
  let m0 = wid.y * ${BM}u;
  let n0 = wid.x * ${BN}u;
  let tx = lid % ${TX}u;
  let ty = lid / ${TX}u;
  var acc: array<f32, ${TM * TN}>;
  for (var k0 = 0u; k0 < K; k0 += ${BK}u) {
    for (var e = lid; e < ${BM * BK}u; e += ${NT}u) {
      // Consecutive invocations read consecutive addresses whichever way A is stored.
      var mm = e / ${BK}u; var kk = e % ${BK}u;
      if (tA) { mm = e % ${BM}u; kk = e / ${BM}u; }
      let m = m0 + mm; let k = k0 + kk;
      var v = 0.0;
      if (m < M && k < K) { v = ld_a(offA + select(m * K + k, k * M + m, tA)); }
      As[kk * ${BM}u + mm] = v;
    }
    for (var e = lid; e < ${BN * BK}u; e += ${NT}u) {
      var nn = e % ${BN}u; var kk = e / ${BN}u;
      if (tB) { kk = e % ${BK}u; nn = e / ${BK}u; }
      let n = n0 + nn; let k = k0 + kk;
      var v = 0.0;
      if (n < N && k < K) { v = ld_b(offB + select(k * N + n, n * K + k, tB)); }
      Bs[kk * ${BN}u + nn] = v;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < ${L.BK}; kk++) {
      var ar: array<f32, ${TM}>;
      var br: array<f32, ${TN}>;
      for (var i = 0u; i < ${L.TM}; i++) { ar[i] = As[kk * ${BM}u + ty * ${TM}u + i]; }
      for (var j = 0u; j < ${L.TN}; j++) { br[j] = Bs[kk * ${BN}u + tx * ${TN}u + j]; }
      for (var i = 0u; i < ${L.TM}; i++) {
        for (var j = 0u; j < ${L.TN}; j++) { acc[i * ${TN}u + j] = fma(ar[i], br[j], acc[i * ${TN}u + j]); }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < ${L.TM}; i++) {
    let m = m0 + ty * ${TM}u + i;
    for (var j = 0u; j < ${L.TN}; j++) {
      let n = n0 + tx * ${TN}u + j;
      if (m < M && n < N) { st_c(offC + m * N + n, acc[i * ${TN}u + j]); }
    }
  }
}`
}

/** C = op(A) op(B) batched with broadcasting; the engine of the matmul kernel and the bench. */
export function matmul(
  b: WebGPUBackend,
  a: TensorInfo,
  bb: TensorInfo,
  tA: boolean,
  tB: boolean,
  tile: MatmulTile = FAST_TILE,
): TensorInfo {
  const g = geometry(a, bb, tA, tB)
  const outShape = [...g.batchShape, g.M, g.N]
  const maxZ = b.limits.maxComputeWorkgroupsPerDimension
  const fast = fastMatmulApplies(b, g, [a.dtype, bb.dtype], tile)
  const out = fast
    ? (() => {
        const data = b.allocData(sizeOf(outShape), 'float32')
        return {
          target: { name: 'c', dtype: a.dtype, binding: data },
          finish: (): TensorInfo => ({ dataId: data, shape: outShape, dtype: 'float32' }),
        }
      })()
    : stagedOutput(b, outShape, a.dtype, 'c')
  const A = operand(b, 'a', a)
  const B = operand(b, 'b', bb)
  const small = g.M <= 32 || g.N <= 32
  for (let base = 0; base < g.batch; base += maxZ) {
    const count = Math.min(maxZ, g.batch - base)
    const { params, rank } = matmulParams(g, base)
    const uniforms = params.toArray()
    if (fast) {
      b.launch({
        key: `matmul-fast:${tile.BM}x${tile.BN}x${tile.BK}/${tile.TM}x${tile.TN}:${tA}:${tB}:${rank}:${uniforms.length}`,
        label: 'matmul (tiled f32)',
        wgsl: () => fastWgsl(tile, tA, tB, rank, uniforms.length),
        inputs: [A.binding, B.binding],
        outputs: [out.target.binding],
        uniforms,
        grid: [g.N / tile.BN, g.M / tile.BM, count],
      })
    } else {
      const BMg = small ? 32 : 64
      const flagsAt = params.u32(tA ? 1 : 0)
      params.u32(tB ? 1 : 0)
      params.u32(rank)
      params.array([16, small ? 2 : 4, small ? 2 : 4])
      const u = params.toArray()
      b.launch({
        key: `matmul:${small}:${a.dtype}:${bb.dtype}:${out.target.dtype}:${u.length}:${flagsAt}`,
        label: 'matmul',
        wgsl: () => generalWgsl(b, small, A, B, out.target, flagsAt, u.length),
        inputs: [A.binding, B.binding],
        outputs: [out.target.binding],
        uniforms: u,
        grid: [Math.ceil(g.N / BMg), Math.ceil(g.M / BMg), count],
      })
    }
  }
  return out.finish()
}

export function registerMatmulKernel(name: string): void {
  registerCoreKernel<'matmul', WebGPUBackend>('matmul', name, ({ inputs, attrs, backend: b }) =>
    matmul(b, inputs.a, inputs.b, attrs.transposeA, attrs.transposeB),
  )
}

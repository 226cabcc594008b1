import type { DType } from '@attnkit/core'
import type { Defines } from './compiler.js'
import { CTYPE, KIND } from './host-convert.js'
import {
  BWD_ALTERNATIVES,
  BWD_WGMMA_ALTERNATIVES,
  FWD_ALTERNATIVES,
  FWD_WGMMA_ALTERNATIVES,
  flashBwdConfig,
  flashBwdWgmmaConfig,
  flashDefines,
  flashFwdConfig,
  flashFwdWgmmaConfig,
} from './kernels/attention.js'

type Stored = Exclude<DType, 'float64'>

const STORED: Stored[] = ['float32', 'float16', 'bfloat16', 'int32', 'uint32', 'bool']
const FLOATS: Stored[] = ['float32', 'float16', 'bfloat16']
const NUMERIC: Stored[] = ['float32', 'float16', 'bfloat16', 'int32', 'uint32']

const elem = (d: Stored) => ({ DT: CTYPE[d], DTK: KIND[d] })

/**
 * Every (source, defines) specialisation the backend compiles at run time, one per code path.
 * CI compiles each with nvcc (test/kernels-nvcc.test.ts) so that a syntax error fails there, not
 * on a GPU.
 */
export function kernelVariants(): { file: string; defines: Defines }[] {
  const v: { file: string; defines: Defines }[] = []
  for (const d of STORED) v.push({ file: 'elementwise.cu', defines: elem(d) })
  for (const from of STORED)
    for (const to of STORED)
      if (from !== to)
        v.push({
          file: 'cast.cu',
          defines: { DT: CTYPE[from], DTK: KIND[from], DTO: CTYPE[to], DTOK: KIND[to] },
        })
  for (const d of NUMERIC) v.push({ file: 'reduce.cu', defines: elem(d) })
  for (const es of [1, 2, 4]) v.push({ file: 'layout.cu', defines: { ES: es } })
  for (const d of FLOATS)
    v.push({ file: 'scatter.cu', defines: { DTU: CTYPE[d], DTA: 'float', DTA_IS_FLOAT: 1 } })
  v.push({ file: 'scatter.cu', defines: { DTU: 'int', DTA: 'int' } })
  v.push({ file: 'scatter.cu', defines: { DTU: 'unsigned int', DTA: 'unsigned int' } })
  for (const d of NUMERIC) v.push({ file: 'topk.cu', defines: elem(d) })
  for (const d of FLOATS) {
    v.push({ file: 'conv_rope.cu', defines: { DT: CTYPE[d] } })
    v.push({ file: 'adamw.cu', defines: { DTP: CTYPE[d], DTS: 'float' } })
    v.push({ file: 'matmul_simt.cu', defines: { DT: CTYPE[d] } })
    v.push({ file: 'attention.cu', defines: { DT: CTYPE[d], MAXD: 256 } })
    v.push({ file: 'delta_rule.cu', defines: { DT: CTYPE[d] } })
  }
  for (const d of ['bfloat16', 'float16'] as const)
    for (const hd of [64, 128]) {
      v.push({ file: 'flash_fwd.cu', defines: { ...flashDefines(d, hd), ...flashFwdConfig(hd).defines } })
      v.push({
        file: 'flash_fwd_wgmma.cu',
        defines: { ...flashDefines(d, hd), ...flashFwdWgmmaConfig(hd).defines },
      })
      v.push({ file: 'flash_bwd.cu', defines: { ...flashDefines(d, hd), ...flashBwdConfig(hd).defines } })
      if (hd === 128)
        v.push({
          file: 'flash_bwd_wgmma.cu',
          defines: { ...flashDefines(d, hd), ...flashBwdWgmmaConfig(hd).defines },
        })
    }
  // The tunable alternatives the H100 runner compares.
  for (const t of FWD_ALTERNATIVES)
    v.push({ file: 'flash_fwd.cu', defines: { ...flashDefines('bfloat16', 128), ...t } })
  for (const t of FWD_WGMMA_ALTERNATIVES)
    v.push({ file: 'flash_fwd_wgmma.cu', defines: { ...flashDefines('bfloat16', 128), ...t } })
  for (const t of BWD_WGMMA_ALTERNATIVES)
    v.push({ file: 'flash_bwd_wgmma.cu', defines: { ...flashDefines('bfloat16', 128), ...t } })
  for (const t of BWD_ALTERNATIVES)
    v.push({ file: 'flash_bwd.cu', defines: { ...flashDefines('bfloat16', 128), ...t } })
  return v
}

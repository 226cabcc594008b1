// Writes the harness's kernel sources into <outDir>: k_base / k_comb from an older tpa.cu.ts
// (<oldTs>: the decode before this change, e.g. `git show 2d4741b:packages/tpa/src/kernels/tpa.cu.ts`),
// the rest from this checkout's. build.sh bundles this with esbuild and runs it with node.
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { cudaSource } from '../../src/kernels/tpa.cu.js'

const [oldTs, out = '.'] = process.argv.slice(2)
if (!oldTs) throw new Error('usage: node gen.mjs <old tpa.cu.ts> [outDir]')
// The older file's source string: its one template literal (no interpolations), evaluated as one.
const text = readFileSync(oldTs, 'utf8')
const open = text.indexOf('/* cuda */ `')
const body = text.slice(open + '/* cuda */ `'.length, text.indexOf('`\n', open + 12))
const OLD = new Function(`return \`${body}\``)() as string

const shape = {
  DT_F16: 1,
  H: 16,
  D: 64,
  R: 2,
  REC: 320,
  OFF_AK: 0,
  OFF_BK: 32,
  OFF_AV: 160,
  OFF_BV: 192,
  P_B: 672,
}
const comb = { DT_F16: 1, TPA_COMBINE: 1, H: 16, D: 64, COMBINE_CHUNK: 16, COMBINE_THREADS: 256 }
const hdr = (d: Record<string, number>) =>
  `${Object.entries(d)
    .map(([k, v]) => `#define ${k} ${v}`)
    .join('\n')}\n`
writeFileSync(join(out, 'k_base.cu'), hdr({ ...shape, TPA_DECODE_MMA: 1 }) + OLD)
writeFileSync(join(out, 'k_comb.cu'), hdr(comb) + OLD)
writeFileSync(join(out, 'k_comb2.cu'), cudaSource(comb))
writeFileSync(join(out, 'k_comb2p.cu'), cudaSource({ ...comb, TPA_PDL: 1 }))
writeFileSync(join(out, 'k_s2.cu'), cudaSource({ ...shape, TPA_DECODE_MMA: 1 }))
writeFileSync(join(out, 'k_s2p.cu'), cudaSource({ ...shape, TPA_DECODE_MMA: 1, TPA_PDL: 1 }))

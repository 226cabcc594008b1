import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BackendError } from '@attnkit/core'
import { afterAll, describe, expect, it } from 'vitest'
import { compileOptions, KernelCompiler } from '../src/compiler.js'
import type { Nvrtc } from '../src/ffi/nvrtc.js'

const root = mkdtempSync(join(tmpdir(), 'attnkit-compiler-'))
const kernels = join(root, 'kernels')
const cache = join(root, 'cache')
afterAll(() => rmSync(root, { recursive: true, force: true }))

function fakeNvrtc() {
  const calls: string[][] = []
  const nvrtc: Nvrtc = {
    path: '/fake/libnvrtc.so.13',
    version: () => ({ major: 13, minor: 0 }),
    supportedArchs: () => [80, 90],
    compile: (source, _name, options) => {
      calls.push([...options])
      if (source.includes('syntax error')) return { ok: false, log: 'k.cu(1): error: expected a ";"' }
      return { ok: true, cubin: new TextEncoder().encode(`cubin:${source}:${options.join(' ')}`), log: '' }
    },
  }
  return { nvrtc, calls }
}

describe('kernel compiler', () => {
  mkdirSync(kernels, { recursive: true })
  writeFileSync(join(kernels, 'common.cuh'), '// header v1')
  writeFileSync(join(kernels, 'k.cu'), '#include "common.cuh"\nextern "C" __global__ void k() {}')

  it('passes the device architecture, includes and sorted defines', () => {
    expect(compileOptions('sm_90a', ['/inc'], { B: 2, A: 'float' })).toEqual([
      '--gpu-architecture=sm_90a',
      '-std=c++17',
      '-default-device',
      '-DATTNKIT_NVRTC=1',
      '-I/inc',
      '-DA=float',
      '-DB=2',
    ])
  })

  it('caches cubins on disk by source, defines and architecture', () => {
    const a = fakeNvrtc()
    const c1 = new KernelCompiler(a.nvrtc, 'sm_90a', kernels, [], cache)
    const bin = c1.compile('k', c1.source('k.cu'), { DT: 'float' })
    expect(a.calls.length).toBe(1)
    expect(readdirSync(cache).length).toBe(1)
    // A second process (new compiler) loads from disk.
    const b = fakeNvrtc()
    const c2 = new KernelCompiler(b.nvrtc, 'sm_90a', kernels, [], cache)
    expect(c2.compile('k', c2.source('k.cu'), { DT: 'float' })).toEqual(bin)
    expect(b.calls.length).toBe(0)
    expect(c2.stats.cacheHits).toBe(1)
    // Other defines, another arch or a changed header miss.
    c2.compile('k', c2.source('k.cu'), { DT: '__half' })
    new KernelCompiler(b.nvrtc, 'sm_80', kernels, [], cache).compile('k', c2.source('k.cu'), { DT: 'float' })
    writeFileSync(join(kernels, 'common.cuh'), '// header v2')
    new KernelCompiler(b.nvrtc, 'sm_90a', kernels, [], cache).compile('k', c2.source('k.cu'), { DT: 'float' })
    expect(b.calls.length).toBe(3)
  })

  it('turns a compile failure into a BackendError carrying the log', () => {
    const c = new KernelCompiler(fakeNvrtc().nvrtc, 'sm_90a', kernels, [], false)
    expect(() => c.compile('bad', 'syntax error', {})).toThrow(BackendError)
    expect(() => c.compile('bad', 'syntax error', {})).toThrow(
      /NVRTC failed to compile bad for sm_90a.*expected a ";"/s,
    )
  })

  it('names the missing source file and the fix', () => {
    const c = new KernelCompiler(fakeNvrtc().nvrtc, 'sm_90a', kernels, [], false)
    expect(() => c.source('nope.cu')).toThrow(/nope\.cu not found.*ATTNKIT_CUDA_KERNELS_DIR/)
  })
})

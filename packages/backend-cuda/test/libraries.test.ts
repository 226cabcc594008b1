import { BackendError } from '@attnkit/core'
import { describe, expect, it } from 'vitest'
import { loadLibrary, type SearchEnvironment, searchDirectories } from '../src/libraries.js'

function fakeEnv(files: string[], env: Record<string, string> = {}): SearchEnvironment {
  const set = new Set(files)
  return {
    env,
    exists: (p) => set.has(p) || [...set].some((f) => f.startsWith(`${p}/`)),
    list: (dir) => [
      ...new Set(
        [...set].filter((f) => f.startsWith(`${dir}/`)).map((f) => f.slice(dir.length + 1).split('/')[0]),
      ),
    ],
    home: '/home/u',
  }
}

const refuse = (p: string): never => {
  throw new Error(`cannot open ${p}`)
}

describe('finding the CUDA libraries', () => {
  it('names the library, every path tried and the fix when it is missing', () => {
    let err: unknown
    try {
      loadLibrary('cublasLt', {}, refuse, fakeEnv([]))
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(BackendError)
    const msg = (err as Error).message
    expect(msg).toContain('libcublasLt (cuBLASLt')
    expect(msg).toContain('libcublasLt.so.13 (cannot open libcublasLt.so.13)')
    expect(msg).toContain('/usr/local/cuda/lib64')
    expect(msg).toContain('Fix: install cuBLAS')
    expect(msg).toContain('ATTNKIT_CUDA_LIB_DIR')
  })

  it('says to install the driver when libcuda is missing', () => {
    expect(() => loadLibrary('cuda', {}, refuse, fakeEnv([]))).toThrow(
      /libcuda \(the CUDA driver API\).*install the NVIDIA driver/s,
    )
  })

  it('reports a library that exists but fails to load, with the loader message', () => {
    const env = fakeEnv(['/opt/cuda/lib/libnvrtc.so.13'], { ATTNKIT_CUDA_LIB_DIR: '/opt/cuda/lib' })
    expect(() => loadLibrary('nvrtc', {}, (p) => refuse(p), env)).toThrow(
      /\/opt\/cuda\/lib\/libnvrtc\.so\.13 \(cannot open \/opt\/cuda\/lib\/libnvrtc\.so\.13\)/,
    )
  })

  it('prefers an explicit path, then ATTNKIT_CUDA_LIB_DIR, then the system folders', () => {
    const env = fakeEnv(
      ['/x/libcuda.so.1', '/usr/local/cuda/lib64/libcublasLt.so.13', '/custom/libcublasLt.so.12'],
      {
        ATTNKIT_CUDA_LIB_DIR: '/custom',
      },
    )
    expect(loadLibrary('cuda', { cuda: '/x/libcuda.so.1' }, (p) => p, env).path).toBe('/x/libcuda.so.1')
    expect(loadLibrary('cublasLt', {}, (p) => p, env).path).toBe('/custom/libcublasLt.so.12')
  })

  it('searches Python wheel folders (nvidia-*-cu13) and LD_LIBRARY_PATH', () => {
    const env = fakeEnv(['/opt/torch/.venv/lib/python3.12/site-packages/nvidia/cu13/lib/libnvrtc.so.13'], {
      LD_LIBRARY_PATH: '/a:/b',
    })
    const dirs = searchDirectories({ libDirs: ['/first'] }, env)
    expect(dirs[0]).toBe('/first')
    expect(dirs).toContain('/a')
    expect(dirs).toContain('/opt/torch/.venv/lib/python3.12/site-packages/nvidia/cu13/lib')
    expect(loadLibrary('nvrtc', {}, (p) => p, env).path).toBe(
      '/opt/torch/.venv/lib/python3.12/site-packages/nvidia/cu13/lib/libnvrtc.so.13',
    )
  })
})

import { describe, expect, it } from 'vitest'
import { CachingAllocator, type DeviceMemory, sizeClass } from '../src/allocator.js'
import { CudaCallError } from '../src/ffi/status.js'

function fakeDevice(capacity = Number.POSITIVE_INFINITY) {
  let next = 0x10000n
  const live = new Map<bigint, number>()
  let used = 0
  const calls = { alloc: 0, free: 0, sync: 0 }
  const device: DeviceMemory = {
    alloc(bytes) {
      calls.alloc++
      if (used + bytes > capacity) throw new CudaCallError('cuMemAlloc', 2, 'CUDA_ERROR_OUT_OF_MEMORY')
      const p = next
      next += BigInt(bytes) + 0x1000n
      live.set(p, bytes)
      used += bytes
      return p
    },
    free(ptr) {
      calls.free++
      const b = live.get(ptr)
      if (b === undefined) throw new Error('double cuMemFree')
      live.delete(ptr)
      used -= b
    },
    synchronize() {
      calls.sync++
    },
  }
  return { device, live, calls, used: () => used }
}

describe('size classes', () => {
  it('rounds up to 512 B, then to quarter steps of each power of two', () => {
    expect(sizeClass(1)).toBe(512)
    expect(sizeClass(512)).toBe(512)
    expect(sizeClass(513)).toBe(1024)
    expect(sizeClass(4096)).toBe(4096)
    expect(sizeClass(4097)).toBe(5120)
    expect(sizeClass(3 * 2 ** 20 + 1)).toBe(3.5 * 2 ** 20)
    for (const n of [700, 12345, 999_999, 2 ** 26 + 5]) {
      expect(sizeClass(n)).toBeGreaterThanOrEqual(n)
      expect(sizeClass(n)).toBeLessThanOrEqual(n + Math.max(512, n / 4))
    }
  })
})

describe('caching allocator', () => {
  it('reuses freed blocks of the same class on the same stream without calling the driver', () => {
    const f = fakeDevice()
    const a = new CachingAllocator(f.device)
    const b1 = a.allocate(1000, 1n)
    a.release(b1)
    const b2 = a.allocate(900, 1n)
    expect(b2.ptr).toBe(b1.ptr)
    expect(f.calls.alloc).toBe(1)
    expect(a.stats()).toMatchObject({ liveBlocks: 1, pooledBlocks: 0, deviceAllocations: 1 })
  })

  it('keeps streams apart (stream-ordered reuse)', () => {
    const f = fakeDevice()
    const a = new CachingAllocator(f.device)
    const b1 = a.allocate(1000, 1n)
    a.release(b1)
    const b2 = a.allocate(1000, 2n)
    expect(b2.ptr).not.toBe(b1.ptr)
    expect(a.stats()).toMatchObject({
      liveBlocks: 1,
      pooledBlocks: 1,
      pooledBytes: 1024,
      deviceAllocations: 2,
    })
  })

  it('reports live and pooled bytes, and frees the pool on emptyCache', () => {
    const f = fakeDevice()
    const a = new CachingAllocator(f.device)
    const blocks = [100, 5000, 70_000].map((n) => a.allocate(n, 0n))
    expect(a.stats().liveBytes).toBe(512 + 5120 + 81_920)
    for (const b of blocks) a.release(b)
    expect(a.stats()).toMatchObject({
      liveBlocks: 0,
      liveBytes: 0,
      pooledBlocks: 3,
      pooledBytes: 512 + 5120 + 81_920,
    })
    a.emptyCache()
    expect(f.live.size).toBe(0)
    expect(f.calls.sync).toBe(1)
    expect(a.stats()).toMatchObject({ pooledBlocks: 0, deviceAllocations: 0, deviceBytes: 0 })
  })

  it('on out-of-memory releases the cache and retries once', () => {
    const f = fakeDevice(12_000)
    const a = new CachingAllocator(f.device)
    const b = a.allocate(8000, 0n)
    a.release(b)
    const c = a.allocate(9000, 0n)
    expect(f.live.size).toBe(1)
    expect(c.size).toBe(10_240)
    expect(() => a.allocate(9000, 0n)).toThrow(CudaCallError)
  })

  it('rejects a double free', () => {
    const a = new CachingAllocator(fakeDevice().device)
    const b = a.allocate(10, 0n)
    a.release(b)
    expect(() => a.release(b)).toThrow(/double free/)
  })

  it('releaseAll returns every block, live or pooled', () => {
    const f = fakeDevice()
    const a = new CachingAllocator(f.device)
    a.allocate(10, 0n)
    a.release(a.allocate(20_000, 0n))
    a.releaseAll()
    expect(f.live.size).toBe(0)
    expect(a.stats().deviceAllocations).toBe(0)
  })
})

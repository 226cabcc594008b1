import { isOutOfMemory } from './ffi/status.js'

/** What the allocator needs from the device. */
export interface DeviceMemory {
  alloc(bytes: number): bigint
  free(ptr: bigint): void
  /** Waits for queued work (before memory is handed back to the driver). */
  synchronize(): void
}

/** A block of device memory handed out by the allocator. */
export interface Block {
  readonly ptr: bigint
  /** Bytes reserved (the size class). */
  readonly size: number
  /** Bytes asked for. */
  readonly requested: number
  /** Stream whose order makes reuse safe. */
  readonly stream: bigint
}

export interface AllocatorStats {
  /** Blocks handed out and not freed. */
  liveBlocks: number
  liveBytes: number
  /** Blocks kept for reuse. */
  pooledBlocks: number
  pooledBytes: number
  /** cuMemAlloc calls that are still allocated (live + pooled). */
  deviceAllocations: number
  deviceBytes: number
  peakDeviceBytes: number
}

const MIN_BLOCK = 512

/**
 * The size class of a request: 512 B minimum, then four classes per power of two (at most 25%
 * over the request), so freed blocks are found again for similar sizes.
 */
export function sizeClass(bytes: number): number {
  if (bytes <= MIN_BLOCK) return MIN_BLOCK
  const p = 2 ** Math.floor(Math.log2(bytes))
  if (p === bytes) return bytes
  const step = Math.max(MIN_BLOCK, p / 4)
  return Math.ceil(bytes / step) * step
}

/**
 * A caching, stream-ordered device allocator: freed blocks go to per-(stream, size class) free
 * lists and are reused by later allocations on the same stream, whose order guarantees earlier
 * kernels have finished with them. cuMemAlloc is called only on a miss; on out-of-memory the
 * cache is released and the allocation retried once.
 */
export class CachingAllocator {
  private readonly free = new Map<string, Block[]>()
  private readonly live = new Set<Block>()
  private liveBytes = 0
  private pooledBlocks = 0
  private pooledBytes = 0
  private deviceBytes = 0
  private peakDeviceBytes = 0

  constructor(private readonly device: DeviceMemory) {}

  allocate(bytes: number, stream: bigint): Block {
    const size = sizeClass(Math.max(1, bytes))
    const key = `${stream}:${size}`
    const list = this.free.get(key)
    let block = list?.pop()
    if (block) {
      this.pooledBlocks--
      this.pooledBytes -= block.size
      block = { ptr: block.ptr, size, requested: bytes, stream }
    } else {
      block = { ptr: this.deviceAlloc(size), size, requested: bytes, stream }
      this.deviceBytes += size
      if (this.deviceBytes > this.peakDeviceBytes) this.peakDeviceBytes = this.deviceBytes
    }
    this.live.add(block)
    this.liveBytes += size
    return block
  }

  release(block: Block): void {
    if (!this.live.delete(block))
      throw new Error('CachingAllocator.release: block is not live (double free?)')
    this.liveBytes -= block.size
    const key = `${block.stream}:${block.size}`
    let list = this.free.get(key)
    if (!list) this.free.set(key, (list = []))
    list.push(block)
    this.pooledBlocks++
    this.pooledBytes += block.size
  }

  /** Returns every pooled block to the driver. */
  emptyCache(): void {
    if (this.pooledBlocks === 0) return
    this.device.synchronize()
    for (const list of this.free.values()) {
      for (const b of list) {
        this.device.free(b.ptr)
        this.deviceBytes -= b.size
      }
    }
    this.free.clear()
    this.pooledBlocks = 0
    this.pooledBytes = 0
  }

  /** Frees everything, live blocks included (backend disposal). */
  releaseAll(): void {
    this.emptyCache()
    for (const b of this.live) {
      this.device.free(b.ptr)
      this.deviceBytes -= b.size
    }
    this.live.clear()
    this.liveBytes = 0
  }

  stats(): AllocatorStats {
    return {
      liveBlocks: this.live.size,
      liveBytes: this.liveBytes,
      pooledBlocks: this.pooledBlocks,
      pooledBytes: this.pooledBytes,
      deviceAllocations: this.live.size + this.pooledBlocks,
      deviceBytes: this.deviceBytes,
      peakDeviceBytes: this.peakDeviceBytes,
    }
  }

  private deviceAlloc(size: number): bigint {
    try {
      return this.device.alloc(size)
    } catch (e) {
      if (!isOutOfMemory(e) || this.pooledBlocks === 0) throw e
      this.emptyCache()
      return this.device.alloc(size)
    }
  }
}

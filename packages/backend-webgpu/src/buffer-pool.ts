/**
 * Reuses GPU buffers by size class. Sizes round up to a class (powers of two with four steps
 * between, so at most 25% is wasted), released buffers wait in their class, and the pool
 * destroys the least recently released ones once it holds more than its limit.
 *
 * Buffers released while commands that use them are still being recorded must not be handed
 * out before those commands are submitted (a queue.writeBuffer into them would run first):
 * the backend releases into `quarantine` and calls `flushQuarantine()` after each submit.
 */
export class BufferPool {
  private readonly free = new Map<number, GPUBuffer[]>()
  private readonly order: GPUBuffer[] = []
  private quarantine: GPUBuffer[] = []
  /** Buffers this pool created and has not destroyed (live + pooled + quarantined). */
  created = 0
  pooledBytes = 0
  allocations = 0
  reuses = 0

  constructor(
    private readonly device: GPUDevice,
    private readonly usage: GPUBufferUsageFlags,
    public limitBytes: number,
    private readonly label: string,
  ) {}

  static sizeClass(bytes: number): number {
    const b = Math.max(16, bytes)
    const p = 2 ** Math.floor(Math.log2(b))
    if (p === b) return b
    const step = p / 4
    return Math.min(p * 2, Math.ceil(b / step) * step)
  }

  acquire(bytes: number): GPUBuffer {
    const size = BufferPool.sizeClass(bytes)
    const list = this.free.get(size)
    const reused = list?.pop()
    if (reused) {
      this.pooledBytes -= size
      const at = this.order.indexOf(reused)
      if (at >= 0) this.order.splice(at, 1)
      this.reuses++
      return reused
    }
    this.allocations++
    this.created++
    return this.device.createBuffer({ size, usage: this.usage, label: this.label })
  }

  /**
   * Takes a buffer back: reusable at once when no recorded-but-unsubmitted command uses it
   * (`pendingCommands` false), else once the backend submits them (flushQuarantine).
   */
  release(buffer: GPUBuffer, pendingCommands = true): void {
    this.quarantine.push(buffer)
    if (!pendingCommands) this.flushQuarantine()
  }

  /** Called after a submit: quarantined buffers become reusable. */
  flushQuarantine(): void {
    if (this.quarantine.length === 0) return
    for (const b of this.quarantine) {
      const size = b.size
      let list = this.free.get(size)
      if (!list) this.free.set(size, (list = []))
      list.push(b)
      this.order.push(b)
      this.pooledBytes += size
    }
    this.quarantine = []
    this.trim(this.limitBytes)
  }

  /** Destroys pooled buffers until at most `keepBytes` remain pooled. */
  trim(keepBytes = 0): void {
    while (this.pooledBytes > keepBytes && this.order.length > 0) {
      const b = this.order.shift()!
      const list = this.free.get(b.size)!
      list.splice(list.indexOf(b), 1)
      this.pooledBytes -= b.size
      this.created--
      b.destroy()
    }
  }

  get pooledBuffers(): number {
    return this.order.length
  }

  get quarantined(): number {
    return this.quarantine.length
  }

  destroyAll(): void {
    this.flushQuarantine()
    this.trim(0)
  }
}

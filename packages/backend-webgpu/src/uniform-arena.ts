/**
 * One uniform buffer for every dispatch of a submission. Each dispatch takes an aligned slot
 * of a host-side copy; before the submit the used range goes up in one queue.writeBuffer.
 * Queue operations run in order, so the next batch may reuse the slots as soon as this batch
 * is submitted. No buffer is created per dispatch.
 */
export class UniformArena {
  readonly buffer: GPUBuffer
  private readonly host: Uint8Array
  private used = 0
  /** Slots handed out since creation (for tests and statistics). */
  slotsTaken = 0

  constructor(
    private readonly device: GPUDevice,
    readonly capacity: number,
    private readonly alignment: number,
  ) {
    this.buffer = device.createBuffer({
      size: capacity,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
      label: 'attnkit uniform arena',
    })
    this.host = new Uint8Array(capacity)
  }

  /** Room for `bytes` more in this batch? */
  fits(bytes: number): boolean {
    return this.used + this.slotSize(bytes) <= this.capacity
  }

  private slotSize(bytes: number): number {
    return Math.ceil(Math.max(bytes, 16) / this.alignment) * this.alignment
  }

  /** Copies `data` into a fresh slot; returns its offset and the size to bind. */
  take(data: Uint8Array): { offset: number; size: number } {
    const size = Math.ceil(Math.max(data.byteLength, 16) / 16) * 16
    const offset = this.used
    this.host.set(data, offset)
    this.host.fill(0, offset + data.byteLength, offset + size)
    this.used += this.slotSize(data.byteLength)
    this.slotsTaken++
    return { offset, size }
  }

  get pending(): boolean {
    return this.used > 0
  }

  /** Uploads this batch's slots; call right before the submit. */
  upload(): void {
    if (this.used === 0) return
    this.device.queue.writeBuffer(this.buffer, 0, this.host, 0, this.used)
    this.used = 0
  }

  destroy(): void {
    this.buffer.destroy()
  }
}

/**
 * Compute pipelines, compiled once per (kernel, specialisation) and kept for the backend's
 * life, with explicit bind group layouts in the ProgramSpec convention: n read-only storage
 * buffers, then m read-write storage buffers, then (optionally) one uniform buffer.
 */
export interface CompiledPipeline {
  pipeline: GPUComputePipeline
  layout: GPUBindGroupLayout
  label: string
  /** Dispatches recorded with it so far. */
  uses: number
}

export type CompileErrorSink = (label: string, message: string) => void

export class PipelineCache {
  private readonly byKey = new Map<string, CompiledPipeline>()
  private readonly layouts = new Map<string, GPUBindGroupLayout>()
  compiles = 0
  hits = 0
  /** Compile checks still in flight; the backend awaits them before reporting errors. */
  readonly pending: Promise<void>[] = []

  constructor(
    private readonly device: GPUDevice,
    private readonly onError: CompileErrorSink,
  ) {}

  get size(): number {
    return this.byKey.size
  }

  bindGroupLayout(nIn: number, nOut: number, uniform: boolean): GPUBindGroupLayout {
    const key = `${nIn}/${nOut}/${uniform ? 1 : 0}`
    let layout = this.layouts.get(key)
    if (!layout) {
      const entries: GPUBindGroupLayoutEntry[] = []
      for (let i = 0; i < nIn; i++)
        entries.push({
          binding: i,
          visibility: GPUShaderStage.COMPUTE,
          buffer: { type: 'read-only-storage' },
        })
      for (let i = 0; i < nOut; i++)
        entries.push({ binding: nIn + i, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'storage' } })
      if (uniform)
        entries.push({ binding: nIn + nOut, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'uniform' } })
      layout = this.device.createBindGroupLayout({ entries, label: `attnkit layout ${key}` })
      this.layouts.set(key, layout)
    }
    return layout
  }

  /**
   * The pipeline for `key`, compiling `source()` on first use. Compile errors are reported
   * asynchronously to the error sink (WebGPU reports them that way); the dispatch that uses
   * the broken pipeline then fails its submission, which the backend surfaces on the next read.
   */
  get(
    key: string,
    label: string,
    source: () => string,
    entryPoint: string,
    nIn: number,
    nOut: number,
    uniform: boolean,
    constants?: Record<string, number>,
  ): CompiledPipeline {
    const hit = this.byKey.get(key)
    if (hit) {
      this.hits++
      return hit
    }
    this.compiles++
    const layout = this.bindGroupLayout(nIn, nOut, uniform)
    const code = source()
    this.device.pushErrorScope('validation')
    const module = this.device.createShaderModule({ code, label })
    const pipeline = this.device.createComputePipeline({
      label,
      layout: this.device.createPipelineLayout({ bindGroupLayouts: [layout] }),
      compute: { module, entryPoint, ...(constants && Object.keys(constants).length ? { constants } : {}) },
    })
    const check = this.device.popErrorScope().then(async (err) => {
      if (!err) return
      let detail = err.message
      try {
        const info = await module.getCompilationInfo()
        const lines = info.messages
          .filter((m) => m.type === 'error')
          .map((m) => `line ${m.lineNum}:${m.linePos}: ${m.message}`)
        if (lines.length) detail = lines.join('\n')
      } catch {
        // getCompilationInfo is optional in some implementations; the scope's message stands.
      }
      this.onError(label, `WGSL program '${label}' failed to compile or link: ${detail}`)
    })
    this.pending.push(check)
    const compiled = { pipeline, layout, label, uses: 0 }
    this.byKey.set(key, compiled)
    return compiled
  }
}

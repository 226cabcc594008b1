/**
 * @attnkit/backend-webgpu for Node: Dawn through the `webgpu` package (loaded on first use),
 * registered with @attnkit/core as backend 'webgpu' (priority 200) on import.
 */
import { registerBackend } from '@attnkit/core'
import type { WebGPUBackend } from './backend.js'
import { createOn, type WebGPUOptions } from './create.js'
import { explainNoNodeAdapter, loadDawn } from './node-gpu.js'

export interface NodeWebGPUOptions extends WebGPUOptions {
  /**
   * Options for Dawn's `create()`, e.g. 'enable-dawn-features=disable_robustness' or
   * 'backend=vulkan' (see the webgpu package's README).
   */
  dawnOptions?: readonly string[]
}

/** Starts a WebGPU backend (on `opts.device` when given, else on a new Dawn adapter). */
export async function createWebGPUBackend(opts: NodeWebGPUOptions = {}): Promise<WebGPUBackend> {
  if (opts.device) return createOn(undefined, opts, explainNoNodeAdapter, `node ${process.versions.node}`)
  const { gpu, runtime } = await loadDawn(opts.dawnOptions ?? [])
  return createOn(gpu, opts, explainNoNodeAdapter, runtime)
}

registerBackend({ name: 'webgpu', priority: 200, create: () => createWebGPUBackend() })

export * from './exports.js'

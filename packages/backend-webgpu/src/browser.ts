/**
 * @attnkit/backend-webgpu for browsers: navigator.gpu, registered with @attnkit/core as
 * backend 'webgpu' (priority 200) on import.
 */
import { registerBackend } from '@attnkit/core'
import type { WebGPUBackend } from './backend.js'
import { createOn, type WebGPUOptions } from './create.js'

function explainNoBrowserAdapter(detail: string): string {
  const nav = (globalThis as { navigator?: Navigator }).navigator
  if (!nav?.gpu) {
    const secure = (globalThis as { isSecureContext?: boolean }).isSecureContext
    return `webgpu: this browser exposes no navigator.gpu (${detail}). ${
      secure === false
        ? 'The page is not a secure context: serve it over https or from localhost.'
        : 'Use a browser with WebGPU (Chrome/Edge 113+, Firefox 141+, Safari 26+); Chromium on Linux needs --enable-unsafe-webgpu --enable-features=Vulkan.'
    }`
  }
  return `webgpu: navigator.gpu gave no adapter (${detail}): WebGPU is disabled or the GPU is blocklisted here (see chrome://gpu); Chromium can fall back to SwiftShader with --enable-unsafe-webgpu --enable-features=Vulkan.`
}

/** Starts a WebGPU backend on navigator.gpu (or on `opts.device`). */
export async function createWebGPUBackend(opts: WebGPUOptions = {}): Promise<WebGPUBackend> {
  const gpu = (globalThis as { navigator?: Navigator }).navigator?.gpu
  const ua = (globalThis as { navigator?: Navigator }).navigator?.userAgent ?? 'browser'
  return createOn(gpu, opts, explainNoBrowserAdapter, ua)
}

registerBackend({ name: 'webgpu', priority: 200, create: () => createWebGPUBackend() })

export * from './exports.js'

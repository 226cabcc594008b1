import { WebGPUBackend, type WebGPUBackendOptions } from './backend.js'
import { type DeviceOptions, startDevice } from './device.js'
import { registerWebGPUKernels } from './kernels/index.js'

export interface WebGPUOptions extends DeviceOptions, WebGPUBackendOptions {}

/**
 * Starts a backend on `gpu` (navigator.gpu or Dawn's GPU object), or on `opts.device`.
 * `explainNoAdapter` says, for the platform at hand, why no adapter came and what to install.
 */
export async function createOn(
  gpu: GPU | undefined,
  opts: WebGPUOptions,
  explainNoAdapter: (detail: string) => Promise<string> | string,
  runtime: string,
): Promise<WebGPUBackend> {
  const started = await startDevice(gpu, opts, explainNoAdapter)
  const name = opts.name ?? 'webgpu'
  registerWebGPUKernels(name)
  const backend = new WebGPUBackend(started, {
    ...opts,
    name,
    runtime,
    ownsDevice: opts.device ? false : (opts.ownsDevice ?? true),
  })
  await backend.probeSubgroups()
  return backend
}

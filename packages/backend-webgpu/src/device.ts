import { BackendError } from '@attnkit/core'

/** Optional adapter features the backend uses when present (and works without). */
export const OPTIONAL_FEATURES = [
  'shader-f16',
  'subgroups',
  'timestamp-query',
  'chromium-experimental-subgroup-matrix',
] as const

export type OptionalFeature = (typeof OPTIONAL_FEATURES)[number]

export interface DeviceOptions {
  /** Use this device as is (its enabled features decide which kernels run). */
  device?: GPUDevice
  /** Adapter request options when the backend requests its own adapter. */
  powerPreference?: GPUPowerPreference
  /** Features not to request even when the adapter has them (to exercise fallbacks). */
  disableFeatures?: readonly string[]
}

export interface StartedDevice {
  device: GPUDevice
  /** The GPU object the device came from: Dawn for Node destroys its instance once unreferenced. */
  gpu?: GPU
  adapterInfo: GPUAdapterInfo | undefined
  features: Set<string>
  /** Smallest subgroup size of the adapter (0 when unknown or subgroups are off). */
  subgroupMinSize: number
  subgroupMaxSize: number
}

const LIMITS_TO_RAISE = [
  'maxBufferSize',
  'maxStorageBufferBindingSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
] as const

/**
 * Requests an adapter and a device with the optional features the adapter has and its
 * largest compute limits. `explainNoAdapter` turns a null adapter into a message that says why
 * and what to install (it knows the platform: Node with Dawn, or a browser).
 */
export async function startDevice(
  gpu: GPU | undefined,
  opts: DeviceOptions,
  explainNoAdapter: (detail: string) => Promise<string> | string,
): Promise<StartedDevice> {
  if (opts.device) {
    const features = new Set<string>([...opts.device.features])
    const info = (opts.device as { adapterInfo?: GPUAdapterInfo }).adapterInfo
    return { device: opts.device, adapterInfo: info, features, ...subgroupSizes(info, features) }
  }
  if (!gpu) throw new BackendError(await explainNoAdapter('navigator.gpu is not available'))
  let adapter: GPUAdapter | null = null
  try {
    adapter = await gpu.requestAdapter({ powerPreference: opts.powerPreference ?? 'high-performance' })
  } catch (e) {
    throw new BackendError(await explainNoAdapter(`requestAdapter() threw: ${(e as Error).message}`))
  }
  if (!adapter) throw new BackendError(await explainNoAdapter('requestAdapter() returned null'))
  const disabled = new Set(opts.disableFeatures ?? [])
  const requiredFeatures = OPTIONAL_FEATURES.filter(
    (f) => adapter.features.has(f) && !disabled.has(f),
  ) as GPUFeatureName[]
  const requiredLimits: Record<string, number> = {}
  for (const name of LIMITS_TO_RAISE) {
    const v = (adapter.limits as unknown as Record<string, number | undefined>)[name]
    if (typeof v === 'number') requiredLimits[name] = v
  }
  let device: GPUDevice
  try {
    device = await adapter.requestDevice({ requiredFeatures, requiredLimits })
  } catch (e) {
    throw new BackendError(
      `webgpu: the adapter (${describeAdapter(adapter.info)}) refused a device: ${(e as Error).message}`,
    )
  }
  const features = new Set<string>([...device.features])
  return { device, gpu, adapterInfo: adapter.info, features, ...subgroupSizes(adapter.info, features) }
}

function subgroupSizes(
  info: GPUAdapterInfo | undefined,
  features: Set<string>,
): { subgroupMinSize: number; subgroupMaxSize: number } {
  if (!features.has('subgroups') || !info) return { subgroupMinSize: 0, subgroupMaxSize: 0 }
  const i = info as GPUAdapterInfo & { subgroupMinSize?: number; subgroupMaxSize?: number }
  return { subgroupMinSize: i.subgroupMinSize ?? 0, subgroupMaxSize: i.subgroupMaxSize ?? 0 }
}

export function describeAdapter(info: GPUAdapterInfo | undefined): string {
  if (!info) return 'unknown adapter'
  const parts = [info.description || info.device || 'unknown device', info.vendor, info.architecture].filter(
    (s) => s,
  )
  return parts.join(', ')
}

import { existsSync, readdirSync } from 'node:fs'
import { BackendError } from '@attnkit/core'

/** What `import('webgpu')` gives: Dawn's GPU factory and the WebGPU globals (GPUBufferUsage...). */
interface DawnModule {
  create(options: string[]): GPU
  globals: Record<string, unknown>
}

/** Loads Dawn through the `webgpu` package and installs its globals (GPUBufferUsage, ...). */
export async function loadDawn(dawnOptions: readonly string[]): Promise<{ gpu: GPU; runtime: string }> {
  let mod: DawnModule
  try {
    mod = (await import('webgpu')) as unknown as DawnModule
  } catch (e) {
    throw new BackendError(
      `webgpu: could not load Dawn for Node (the 'webgpu' package): ${(e as Error).message}. Install it with 'npm install webgpu' (it ships dawn.node for linux-x64/arm64, macOS and Windows).`,
    )
  }
  for (const [k, v] of Object.entries(mod.globals)) {
    if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v
  }
  return {
    gpu: mod.create([...dawnOptions]),
    runtime: `node ${process.versions.node}, Dawn (webgpu npm package)`,
  }
}

const LIB_DIRS = [
  '/usr/lib/x86_64-linux-gnu',
  '/usr/lib/aarch64-linux-gnu',
  '/lib/x86_64-linux-gnu',
  '/lib/aarch64-linux-gnu',
  '/usr/lib64',
  '/usr/lib',
  '/usr/local/lib',
]
const ICD_DIRS = ['/usr/share/vulkan/icd.d', '/etc/vulkan/icd.d', '/usr/local/share/vulkan/icd.d']

/** What the diagnosis looks at (the real machine by default; tests pass their own). */
export interface MachineProbe {
  platform: string
  env: Record<string, string | undefined>
  exists(path: string): boolean
  list(dir: string): string[]
}

const realMachine: MachineProbe = {
  platform: process.platform,
  env: process.env,
  exists: existsSync,
  list: (dir) => readdirSync(dir),
}

/** Why Dawn found no adapter on this machine, and what to install. */
export function explainNoNodeAdapter(detail: string, m: MachineProbe = realMachine): string {
  const head = `webgpu: no WebGPU adapter (${detail}).`
  if (m.platform !== 'linux') {
    return `${head} Dawn uses ${m.platform === 'darwin' ? 'Metal' : 'D3D12/Vulkan'} here: check that the GPU driver is installed and up to date.`
  }
  const ldPath = (m.env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean)
  const loader = [...ldPath, ...LIB_DIRS].some((d) => m.exists(`${d}/libvulkan.so.1`))
  if (!loader) {
    return `${head} The Vulkan loader (libvulkan.so.1) is missing: install it (Debian/Ubuntu: apt-get install libvulkan1), plus a driver: your GPU's (e.g. NVIDIA's) or Mesa's CPU driver lavapipe (apt-get install mesa-vulkan-drivers).`
  }
  const explicit = m.env.VK_DRIVER_FILES ?? m.env.VK_ICD_FILENAMES
  if (explicit) {
    const missing = explicit.split(':').filter((f) => f && !m.exists(f))
    if (missing.length)
      return `${head} VK_DRIVER_FILES/VK_ICD_FILENAMES names driver manifests that do not exist: ${missing.join(', ')}.`
  }
  const icds = ICD_DIRS.flatMap((d) => {
    try {
      return m
        .list(d)
        .filter((f) => f.endsWith('.json'))
        .map((f) => `${d}/${f}`)
    } catch {
      return []
    }
  })
  if (!explicit && icds.length === 0) {
    return `${head} The Vulkan loader is installed but no Vulkan driver is (no manifest in ${ICD_DIRS.join(', ')}): install your GPU's driver, or Mesa's CPU driver lavapipe (apt-get install mesa-vulkan-drivers); or point VK_DRIVER_FILES at a driver's icd.json.`
  }
  return `${head} The Vulkan loader and driver manifests (${explicit ?? icds.join(', ')}) are present, but no driver gave an adapter: check the driver matches the kernel module (nvidia-smi), that /dev/dri or /dev/nvidia* is accessible, and run with VK_LOADER_DEBUG=error,warn to see why drivers are rejected.`
}

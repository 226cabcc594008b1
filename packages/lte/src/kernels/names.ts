/**
 * Names of the kernels this package registers (per backend) through core's kernel registry.
 * Their inputs, attributes and outputs mirror core's `gatedDeltaRule` / `gatedDeltaRuleBackward`
 * (see kernel-contract.ts) so the two paths are interchangeable.
 */
export const KERNELS = {
  /** Chunkwise gated delta rule forward: q, k, v, g, beta, state? -> out, finalState. */
  gdnForward: 'lte.gdnChunkedForward',
  /** Its backward: + dout, dFinalState? -> dq, dk, dv, dg, dbeta, dstate. */
  gdnBackward: 'lte.gdnChunkedBackward',
  /** One LTE decode step's attention over the constant-size cache plus the new token. */
  decodeAttention: 'lte.decodeAttention',
} as const

export interface GdnKernelAttrs {
  scale: number
  chunkSize: number
}

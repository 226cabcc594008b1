import { keyVisible } from '../attention-mask.js'
import { registerCoreKernel } from '../registry.js'
import type { CpuBackend } from './cpu-backend.js'

export function registerAttentionKernels(): void {
  registerCoreKernel<'attention', CpuBackend>('attention', 'cpu', ({ inputs, attrs, backend }) => {
    const { q, k, v, qPos, kPos, keep } = inputs
    const [B, Hq, Tq, D] = q.shape
    const [, Hk, Tk] = k.shape
    const Dv = v.shape[3]
    const group = Hq / Hk
    const vq = backend.values(q)
    const vk = backend.values(k)
    const vv = backend.values(v)
    const vqp = backend.values(qPos)
    const vkp = backend.values(kPos)
    const vkeep = keep ? backend.values(keep) : undefined
    const out = backend.alloc(q.dtype, B * Hq * Tq * Dv)
    const lseDType = q.dtype === 'float64' ? 'float64' : 'float32'
    const lse = backend.alloc(lseDType, B * Hq * Tq)
    const scores = new Float64Array(Tk)
    const visible = new Uint8Array(Tk)
    const acc = new Float64Array(Dv)
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < Hq; h++) {
        const hk = Math.floor(h / group)
        const kvBase = (b * Hk + hk) * Tk
        for (let i = 0; i < Tq; i++) {
          const row = (b * Hq + h) * Tq + i
          const qp = vqp[row]
          const qo = row * D
          let m = Number.NEGATIVE_INFINITY
          for (let j = 0; j < Tk; j++) {
            const kp = vkp[kvBase + j]
            const vis = keyVisible(qp, kp, vkeep ? vkeep[kvBase + j] === 1 : undefined, attrs)
            visible[j] = vis ? 1 : 0
            if (!vis) continue
            const ko = (kvBase + j) * D
            let s = 0
            for (let d = 0; d < D; d++) s += vq[qo + d] * vk[ko + d]
            s *= attrs.scale
            scores[j] = s
            if (s > m) m = s
          }
          acc.fill(0)
          if (m === Number.NEGATIVE_INFINITY) {
            lse[row] = Number.NEGATIVE_INFINITY
            continue
          }
          let l = 0
          for (let j = 0; j < Tk; j++) {
            if (!visible[j]) continue
            const p = Math.exp(scores[j] - m)
            l += p
            const vo = (kvBase + j) * Dv
            for (let d = 0; d < Dv; d++) acc[d] += p * vv[vo + d]
          }
          for (let d = 0; d < Dv; d++) out[row * Dv + d] = acc[d] / l
          lse[row] = m + Math.log(l)
        }
      }
    }
    return [backend.output(out, [B, Hq, Tq, Dv], q.dtype), backend.output(lse, [B, Hq, Tq], lseDType)]
  })

  registerCoreKernel<'attentionBackward', CpuBackend>(
    'attentionBackward',
    'cpu',
    ({ inputs, attrs, backend }) => {
      const { q, k, v, out, lse, dout, qPos, kPos, keep } = inputs
      const [B, Hq, Tq, D] = q.shape
      const [, Hk, Tk] = k.shape
      const Dv = v.shape[3]
      const group = Hq / Hk
      const vq = backend.values(q)
      const vk = backend.values(k)
      const vv = backend.values(v)
      const vo = backend.values(out)
      const vl = backend.values(lse)
      const vdo = backend.values(dout)
      const vqp = backend.values(qPos)
      const vkp = backend.values(kPos)
      const vkeep = keep ? backend.values(keep) : undefined
      const dq = new Float64Array(vq.length)
      const dk = new Float64Array(vk.length)
      const dv = new Float64Array(vv.length)
      for (let b = 0; b < B; b++) {
        for (let h = 0; h < Hq; h++) {
          const hk = Math.floor(h / group)
          const kvBase = (b * Hk + hk) * Tk
          for (let i = 0; i < Tq; i++) {
            const row = (b * Hq + h) * Tq + i
            const l = vl[row]
            if (l === Number.NEGATIVE_INFINITY) continue
            const qp = vqp[row]
            const qo = row * D
            let delta = 0
            for (let d = 0; d < Dv; d++) delta += vdo[row * Dv + d] * vo[row * Dv + d]
            for (let j = 0; j < Tk; j++) {
              if (!keyVisible(qp, vkp[kvBase + j], vkeep ? vkeep[kvBase + j] === 1 : undefined, attrs))
                continue
              const ko = (kvBase + j) * D
              const vOff = (kvBase + j) * Dv
              let s = 0
              for (let d = 0; d < D; d++) s += vq[qo + d] * vk[ko + d]
              const p = Math.exp(s * attrs.scale - l)
              let dp = 0
              for (let d = 0; d < Dv; d++) {
                dp += vdo[row * Dv + d] * vv[vOff + d]
                dv[vOff + d] += p * vdo[row * Dv + d]
              }
              const ds = p * (dp - delta) * attrs.scale
              for (let d = 0; d < D; d++) {
                dq[qo + d] += ds * vk[ko + d]
                dk[ko + d] += ds * vq[qo + d]
              }
            }
          }
        }
      }
      const wrap = (acc: Float64Array, shape: readonly number[]) => {
        const o = backend.alloc(q.dtype, acc.length)
        o.set(acc)
        return backend.output(o, shape, q.dtype)
      }
      return [wrap(dq, q.shape), wrap(dk, k.shape), wrap(dv, v.shape)]
    },
  )
}

/**
 * Flash-attention cases beyond the conformance suite: several key tiles, partial tiles, Tq != Tk,
 * grouped-query heads, window + sinks + keep mask, decode, per-head positions (rows with no
 * visible key), window without causal. Used by the H100 runner and the CPU-emulated test.
 */
import * as o from '@attnkit/core'
import type { OpCase } from '@attnkit/core/testing'

export function flashCases(): OpCase[] {
  const F: o.DType[] = ['bfloat16', 'float16']
  const att = (
    name: string,
    q: number[],
    kv: number[],
    opts: (x: Record<string, o.Tensor>) => o.AttentionOptions,
    extra: OpCase['inputs'] = {},
  ): OpCase => ({
    name: `flash/${name}`,
    kernels: ['attention', 'attentionBackward'],
    dtypes: F,
    inputs: { q: { shape: q }, k: { shape: kv }, v: { shape: kv }, ...extra },
    fn: (x) => o.attention(x.q, x.k, x.v, opts(x)),
    tol: 2,
    finiteDiff: false,
  })
  return [
    att('noncausal-hd64-tq257-tk300', [1, 2, 257, 64], [1, 2, 300, 64], () => ({})),
    att('causal-gqa-hd128-t200', [1, 4, 200, 128], [1, 2, 200, 128], () => ({ causal: true })),
    att(
      'window-sinks-keep-hd64-t300',
      [1, 2, 300, 64],
      [1, 2, 300, 64],
      (x) => ({ causal: true, window: 37, sinks: 3, keep: x.keep }),
      {
        keep: { shape: [1, 2, 300], dist: 'bool', dtype: 'bool' },
      },
    ),
    att('decode-hd128-tk333', [2, 4, 1, 128], [2, 4, 333, 128], () => ({ causal: true })),
    att(
      'perhead-positions-hd128',
      [1, 2, 150, 128],
      [1, 2, 150, 128],
      (x) => ({ causal: true, qPositions: x.pos, kPositions: x.pos }),
      {
        pos: { shape: [1, 2, 150], dist: 'int', dtype: 'int32', low: 0, high: 400 },
      },
    ),
    att('window-only-hd128-t260', [1, 1, 260, 128], [1, 1, 260, 128], () => ({ window: 50 })),
  ]
}

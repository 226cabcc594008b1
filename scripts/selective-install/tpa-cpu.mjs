// Only @attnkit/core + @attnkit/tpa installed: a TPA prefill and a decode step on the CPU
// reference; the decode of the last prompt token must equal the prefill's last row.
import { Rng, reshape, slice } from '@attnkit/core'
import { createCache, decode, forward, init, prefill } from '@attnkit/tpa'

const config = { dModel: 64, heads: 4, headDim: 16 }
const params = init(config, new Rng(0))
const x = new Rng(1).normal([1, 9, 64])
const y = forward(params, x)
  .dataSync()
  .slice(8 * 64)
const cache = createCache(config, { batch: 1, maxLen: 16 })
prefill(params, cache, slice(x, [0, 0, 0], [1, 8, 64]))
const yt = decode(params, cache, reshape(slice(x, [0, 8, 0], [1, 1, 64]), [1, 64])).dataSync()
const err = Math.max(...yt.map((v, i) => Math.abs(v - y[i])))
console.log(`tpa decode vs forward on cpu: max abs error ${err.toExponential(2)}`)
if (!(err < 1e-4)) process.exit(1)

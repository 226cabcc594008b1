import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { readResults, resultsMarkdown, type TrainResults } from '../src/train/results.js'

// The H100 runs recorded in the repository (apps/bench/results) serve as real fixtures.
const results = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'results')

describe('what RESULTS.md says of a run', () => {
  it('says when no S-NIAH run learned the retrieval (answer loss at chance, 0% everywhere)', () => {
    const r = readResults(path.join(results, 'h100-lalte-niah.json'))
    expect(resultsMarkdown(r, 'loss.svg')).toMatch(
      /No run learned the retrieval: every answer loss is at chance \(ln 10 = 2\.303 nats per digit\) after \d+ steps/,
    )
  })

  it('does not say so once one run answers above chance', () => {
    const r = readResults(path.join(results, 'h100-lalte-niah.json')) as TrainResults
    const learned = structuredClone(r)
    const final = learned.runs[3].summary!.final
    for (const k of Object.keys(final)) if (k.startsWith('answer_loss@')) final[k] = 0.9
    expect(resultsMarkdown(learned, 'loss.svg')).not.toMatch(/No run learned the retrieval/)
  })

  it('reads the TPA comparison: best validation loss and the measured KV-cache ratio', () => {
    const md = resultsMarkdown(readResults(path.join(results, 'h100-tpa-vs-mha.json')), 'loss.svg')
    expect(md).toMatch(/Lowest validation loss: (mha|gqa|tpa) \(\d\.\d{4}\)\./)
    expect(md).toMatch(/TPA's measured KV cache is 3\.20x smaller than MHA's per token\./)
    expect(md).not.toMatch(/No run learned/)
  })
})

import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { readResults, resultsMarkdown, type TrainResults } from '../src/train/results.js'

// The H100 runs recorded in the repository (apps/bench/results) serve as real fixtures.
const results = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'results')

describe('what RESULTS.md says of a run', () => {
  it('says when no S-NIAH run learned the retrieval (answer loss at chance, 0% everywhere)', () => {
    const r = readResults(path.join(results, 'h100-lalte-niah-before-curriculum.json'))
    expect(resultsMarkdown(r, 'loss.svg')).toMatch(
      /No run learned the retrieval: every answer loss is at chance \(ln 10 = 2\.303 nats per digit\) after \d+ steps/,
    )
  })

  it('does not say so once one run answers above chance', () => {
    const r = readResults(path.join(results, 'h100-lalte-niah-before-curriculum.json')) as TrainResults
    const learned = structuredClone(r)
    const final = learned.runs[3].summary!.final
    for (const k of Object.keys(final)) if (k.startsWith('answer_loss@')) final[k] = 0.9
    expect(resultsMarkdown(learned, 'loss.svg')).not.toMatch(/No run learned the retrieval/)
  })

  it('says whether S-NIAH separates laLTE from GDN, and that full attention learned slowest', () => {
    const r = readResults(path.join(results, 'h100-lalte-niah.json'))
    const md = resultsMarkdown(r, 'loss.svg')
    expect(md).not.toMatch(/No run learned/)
    expect(md).toMatch(/At 4096 tokens GDN alone retrieves the needle \(97%; GDN\+SWA 100%, laLTE 100%\)/)
    expect(md).toMatch(/Full attention learned the retrieval slowest at equal steps \(2% at 4096\)/)
    // Were GDN to fail, the run would read as a comparison in the paper's direction.
    const failing = structuredClone(r) as TrainResults
    for (const id of ['gdn', 'gdn-swa'])
      failing.runs.find((x) => x.id === id)!.summary!.final['niah_acc@4096'] = 0.1
    expect(resultsMarkdown(failing, 'loss.svg')).toMatch(
      /At 4096 tokens laLTE 100% vs GDN 10% and GDN\+SWA 10%: laLTE retrieves best \(the paper's direction\)/,
    )
  })

  it('reads the TPA comparison: best validation loss and the measured KV-cache ratio', () => {
    const md = resultsMarkdown(readResults(path.join(results, 'h100-tpa-vs-mha.json')), 'loss.svg')
    expect(md).toMatch(/Lowest validation loss: (mha|gqa|tpa) \(\d\.\d{4}\)\./)
    expect(md).toMatch(/TPA's measured KV cache is 3\.20x smaller than MHA's per token\./)
    expect(md).not.toMatch(/No run learned/)
  })
})

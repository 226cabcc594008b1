/**
 * Byte-level tokenizer: one token per UTF-8 byte, vocabulary 256. No merges are learned, so it
 * needs no training split and nothing is out of vocabulary; the price is longer sequences
 * (the Brown corpus is nearly all ASCII, so about one token per character).
 */
export const BYTE_VOCAB_SIZE = 256

const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: false })

export function encodeBytes(text: string): Uint8Array {
  return encoder.encode(text)
}

export function decodeBytes(tokens: ArrayLike<number>): string {
  const bytes = Uint8Array.from(tokens as ArrayLike<number>, (t) => {
    if (!Number.isInteger(t) || t < 0 || t >= BYTE_VOCAB_SIZE)
      throw new RangeError(`decodeBytes: token ${t} is not a byte (expected an integer in [0, 255])`)
    return t
  })
  return decoder.decode(bytes)
}

// The model-free vector: hashed character trigrams of each word (plus the word itself),
// signed feature hashing into a fixed size, L2-normalised. Words spelled nearly alike share
// most trigrams, so "drawr" still meets "drawer"; it knows nothing of meaning.
import { keywords } from './types.js'

export const HASHED_DIM = 256

function fnv1a(s: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}

function bump(v: Float32Array, feature: string, weight: number): void {
  const h = fnv1a(feature)
  v[h % v.length]! += (h & 0x80000000) ? -weight : weight
}

export function hashedVector(text: string, dim = HASHED_DIM): Float32Array {
  const v = new Float32Array(dim)
  for (const w of keywords(text)) {
    // Plural and singular meet: "keys" and "key" share every trigram but the last.
    bump(v, `w:${w}`, 1)
    const padded = ` ${w} `
    for (let i = 0; i + 3 <= padded.length; i++) bump(v, padded.slice(i, i + 3), 0.5)
  }
  let norm = 0
  for (const x of v) norm += x * x
  norm = Math.sqrt(norm)
  if (norm > 0) for (let i = 0; i < dim; i++) v[i]! /= norm
  return v
}

// The in-memory vector scan against a plain reference (every vector's dot product, sorted):
// same ids in the same order after adds, bulk loads, removals (the last slot moves) and growth.
import { describe, expect, it } from 'vitest'
import { KeyVectors, KIND_FACT, KIND_TURN, type VectorHit } from './vector-cache.js'

const DIM = 16

function unit(seed: number): Float32Array {
  let x = seed * 2654435761 >>> 0
  const v = new Float32Array(DIM)
  for (let j = 0; j < DIM; j++) { x = (x * 1103515245 + 12345) >>> 0; v[j] = (x % 2001) / 1000 - 1 }
  const n = Math.hypot(...v)
  return v.map((a) => a / n)
}

const dot = (a: Float32Array, b: Float32Array) => a.reduce((s, x, j) => s + x * b[j]!, 0)

function top(kv: KeyVectors, q: Float32Array, kind: number, n: number): VectorHit[] {
  const out: VectorHit[] = []
  kv.search(q, kind, n, new Float32Array(kv.size), out)
  return out
}

describe('KeyVectors', () => {
  it('ranks like a full dot-product sort, through adds, bulk rows, removals and growth', () => {
    const kv = new KeyVectors(DIM, 4)
    const live = new Map<number, { v: Float32Array; kind: number }>()
    for (let id = 1; id <= 150; id++) {
      const v = unit(id)
      const kind = id % 3 === 0 ? KIND_TURN : KIND_FACT
      kv.add(id, kind, v)
      live.set(id, { v, kind })
    }
    // A bulk load of rows 0, 2, 4 … of a row-major block.
    const block = new Float32Array(40 * DIM)
    const rows: number[] = []
    const ids: number[] = []
    for (let r = 0; r < 40; r += 2) {
      block.set(unit(1000 + r), r * DIM)
      rows.push(r)
      ids.push(1000 + r)
      live.set(1000 + r, { v: unit(1000 + r), kind: KIND_FACT })
    }
    kv.addRows(block, rows, ids, ids.map(() => KIND_FACT))
    for (const id of [1, 2, 75, 150, 1000, 1038]) { expect(kv.remove(id)).toBe(true); live.delete(id) }
    expect(kv.remove(1)).toBe(false)
    expect(kv.size).toBe(live.size)
    for (const [q, kind] of [[unit(7), -1], [unit(99), KIND_FACT], [unit(123), KIND_TURN]] as const) {
      const want = [...live].filter(([, m]) => kind < 0 || m.kind === kind).map(([id, m]) => ({ id, sim: dot(q, m.v) })).sort((a, b) => b.sim - a.sim).slice(0, 10)
      const got = top(kv, q, kind, 10)
      expect(got.map((h) => h.id)).toEqual(want.map((w) => w.id))
      got.forEach((h, i) => expect(h.similarity).toBeCloseTo(want[i]!.sim, 5))
    }
  })

  it('finds nothing in an empty key and keeps the best n across keys searched into one list', () => {
    const a = new KeyVectors(DIM)
    const b = new KeyVectors(DIM)
    expect(top(a, unit(1), -1, 5)).toEqual([])
    a.add(1, KIND_FACT, unit(1))
    a.add(2, KIND_FACT, unit(2))
    b.add(3, KIND_FACT, unit(3))
    const out: VectorHit[] = []
    a.search(unit(3), -1, 2, new Float32Array(8), out)
    b.search(unit(3), -1, 2, new Float32Array(8), out)
    expect(out.length).toBe(2)
    expect(out[0]!.id).toBe(3)
    expect(out[0]!.similarity).toBeCloseTo(1, 5)
  })
})

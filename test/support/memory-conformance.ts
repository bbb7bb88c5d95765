// The MemoryStore conformance suite: every store (embedded SQLite, Qdrant) must pass it.
// Vectors are the model-free hashed ones (no model here); "by meaning" uses vectors that are
// close while the texts share no word, which is what an embedding model gives the store.
import { describe, expect, it } from 'vitest'
import { hashedVector, HASHED_DIM } from '../../hub/src/memory/hash-embed.js'
import type { MemoryStore } from '../../hub/src/memory/types.js'

export interface StoreUnderTest {
  /** A store on fresh, empty storage (its own file or collection). */
  fresh(): Promise<MemoryStore>
  /** A second store on the same storage as `s` (after `s` was closed): a restart. */
  reopen(s: MemoryStore): Promise<MemoryStore>
}

const v = (text: string) => hashedVector(text)

/** A unit vector along axis `i` plus a little of axis `j`: two such with the same `i` are close. */
function axis(i: number, j = (i + 1) % HASHED_DIM, mix = 0.1): Float32Array {
  const out = new Float32Array(HASHED_DIM)
  out[i] = 1
  out[j] = mix
  const n = Math.hypot(1, mix)
  out[i]! /= n
  out[j]! /= n
  return out
}

export function memoryConformance(name: string, sut: StoreUnderTest): void {
  describe(`MemoryStore conformance: ${name}`, () => {
    it('stores memories and lists them newest first', async () => {
      const s = await sut.fresh()
      try {
        await s.add('room:kitchen', 'fact', 'the keys are in the drawer', v('the keys are in the drawer'), 1000)
        await s.add('room:kitchen', 'turn', 'what is the weather', v('what is the weather'), 2000)
        const list = await s.list('room:kitchen')
        expect(list.map((m) => [m.kind, m.text, m.at])).toEqual([['turn', 'what is the weather', 2000], ['fact', 'the keys are in the drawer', 1000]])
        expect((await s.list('room:kitchen', 10, 'fact')).map((m) => m.text)).toEqual(['the keys are in the drawer'])
        expect((await s.stats()).memories).toBe(2)
      } finally { await s.close() }
    })

    it('recalls by keyword (shared words) and by near spelling', async () => {
      const s = await sut.fresh()
      try {
        for (const t of ['the keys are in the drawer', 'the bins go out on tuesday', 'grandma likes lilies', 'the wifi password is on the fridge']) await s.add('room:hall', 'fact', t, v(t))
        const byWord = await s.search(['room:hall'], { text: 'where are my keys', vector: v('where are my keys'), k: 3 })
        expect(byWord[0]?.text).toBe('the keys are in the drawer')
        expect(byWord[0]?.keyword).toBe(true)
        // No word shared: "drawr" and "bnis" are misspelt. Only the trigram vector can find them.
        const near = await s.search(['room:hall'], { text: 'the drawr', vector: v('the drawr'), k: 3 })
        expect(near[0]?.text).toBe('the keys are in the drawer')
        expect(near[0]?.keyword).toBe(false)
        const near2 = await s.search(['room:hall'], { text: 'bnis tuesdya', vector: v('bnis tuesdya'), k: 1 })
        expect(near2[0]?.text).toBe('the bins go out on tuesday')
        // Keyword only (an embedding that failed): still found.
        const kwOnly = await s.search(['room:hall'], { text: 'lilies', k: 2 })
        expect(kwOnly.map((h) => h.text)).toEqual(['grandma likes lilies'])
      } finally { await s.close() }
    })

    it('recalls by meaning: close vectors with no word in common', async () => {
      const s = await sut.fresh()
      try {
        await s.add('user:ana', 'fact', 'my car is parked on level three', axis(7))
        await s.add('user:ana', 'fact', 'the dentist is on friday', axis(40))
        await s.add('user:ana', 'fact', 'pasta for dinner', axis(90))
        const hits = await s.search(['user:ana'], { text: 'vehicle garage', vector: axis(7, 8, 0.3), k: 3 })
        expect(hits[0]?.text).toBe('my car is parked on level three')
        expect(hits[0]?.similarity).toBeGreaterThan(0.9)
        expect(hits[0]?.keyword).toBe(false)
      } finally { await s.close() }
    })

    it('never returns another key\'s memories', async () => {
      const s = await sut.fresh()
      try {
        await s.add('room:kitchen', 'fact', 'the keys are in the drawer', v('the keys are in the drawer'))
        await s.add('room:bedroom', 'fact', 'the keys are under the pillow', v('the keys are under the pillow'))
        const kitchen = await s.search(['room:kitchen'], { text: 'keys pillow', vector: v('keys pillow'), k: 10 })
        expect(kitchen.map((h) => h.key)).toEqual(['room:kitchen'])
        expect(await s.search(['room:office'], { text: 'keys', vector: v('keys'), k: 10 })).toEqual([])
        const both = await s.search(['room:kitchen', 'room:bedroom'], { text: 'keys', vector: v('keys'), k: 10 })
        expect(both.map((h) => h.key).sort()).toEqual(['room:bedroom', 'room:kitchen'])
        expect((await s.list('room:bedroom')).map((m) => m.text)).toEqual(['the keys are under the pillow'])
      } finally { await s.close() }
    })

    it('deletes one memory, or every memory of a key, and nothing else', async () => {
      const s = await sut.fresh()
      try {
        const a = await s.add('room:kitchen', 'fact', 'the keys are in the drawer', v('the keys are in the drawer'))
        await s.add('room:kitchen', 'fact', 'milk is in the fridge', v('milk is in the fridge'))
        await s.add('room:hall', 'fact', 'umbrella by the door', v('umbrella by the door'))
        expect(await s.delete('room:hall', a.id)).toBe(0) // the id is not the hall's
        expect(await s.delete('room:kitchen', a.id)).toBe(1)
        expect(await s.search(['room:kitchen'], { text: 'keys drawer', vector: v('keys drawer'), k: 5 })).not.toContainEqual(expect.objectContaining({ text: 'the keys are in the drawer' }))
        expect(await s.delete('room:kitchen')).toBe(1)
        expect(await s.list('room:kitchen')).toEqual([])
        expect((await s.list('room:hall')).length).toBe(1)
      } finally { await s.close() }
    })

    it('prunes by count (oldest first) and by age, per key', async () => {
      const s = await sut.fresh()
      try {
        const now = 10_000_000
        for (let i = 0; i < 8; i++) await s.add('room:a', 'turn', `turn number ${i}`, v(`turn number ${i}`), now - (8 - i) * 1000)
        await s.add('room:b', 'fact', 'ancient fact', v('ancient fact'), now - 1_000_000)
        expect(await s.prune({ maxCount: 5, maxAgeMs: 0 }, 'room:a', now)).toBe(3)
        expect((await s.list('room:a')).map((m) => m.text)).toEqual([7, 6, 5, 4, 3].map((i) => `turn number ${i}`))
        expect(await s.prune({ maxCount: 0, maxAgeMs: 100_000 }, undefined, now)).toBe(1)
        expect(await s.list('room:b')).toEqual([])
        expect((await s.list('room:a')).length).toBe(5)
        expect(await s.search(['room:a'], { text: 'number', vector: v('turn number 0'), k: 10 })).not.toContainEqual(expect.objectContaining({ text: 'turn number 0' }))
      } finally { await s.close() }
    })

    it('keeps memories across a restart', async () => {
      const s = await sut.fresh()
      await s.add('room:kitchen', 'fact', 'the keys are in the drawer', v('the keys are in the drawer'))
      await s.close()
      const again = await sut.reopen(s)
      try {
        const hits = await again.search(['room:kitchen'], { text: 'keys', vector: v('where are my keys'), k: 1 })
        expect(hits[0]?.text).toBe('the keys are in the drawer')
      } finally { await again.close() }
    })

    it('takes concurrent writes without losing any', async () => {
      const s = await sut.fresh()
      try {
        await Promise.all(Array.from({ length: 200 }, (_, i) => s.add(`room:r${i % 4}`, 'turn', `note ${i} about thing${i}`, v(`note ${i} about thing${i}`))))
        expect((await s.stats()).memories).toBe(200)
        expect((await s.list('room:r3', 1000)).length).toBe(50)
        const hit = await s.search(['room:r1'], { text: 'thing101', vector: v('thing101'), k: 1 })
        expect(hit[0]?.text).toBe('note 101 about thing101')
      } finally { await s.close() }
    })
  })
}

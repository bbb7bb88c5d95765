import { describe, expect, it } from 'vitest'
import { desiredHub, rendezvous } from './assignment.js'
import { snrDb } from './arbitration.js'

describe('assignment rule', () => {
  const hubs = ['one', 'two', 'three']
  const nodes = Array.from({ length: 60 }, (_, i) => `node${i}`)

  it('removing a hub moves only its own nodes (rendezvous)', () => {
    for (const gone of hubs) {
      const left = hubs.filter((h) => h !== gone)
      for (const n of nodes) {
        const before = rendezvous(n, hubs)
        if (before !== gone) expect(rendezvous(n, left)).toBe(before)
      }
    }
  })

  it('spreads nodes over every hub', () => {
    const counts = new Map<string, number>()
    for (const n of nodes) counts.set(rendezvous(n, hubs)!, (counts.get(rendezvous(n, hubs)!) ?? 0) + 1)
    for (const h of hubs) expect(counts.get(h)).toBeGreaterThan(5)
  })

  it('standbys only without a live active hub; draining (not eligible) hubs get nothing', () => {
    const live = [{ id: 'main', role: 'active' as const, eligible: true }, { id: 'standby', role: 'standby' as const, eligible: true }]
    expect(desiredHub('kitchen', live)).toBe('main')
    expect(desiredHub('kitchen', [{ ...live[0]!, eligible: false }, live[1]!])).toBe('standby')
    expect(desiredHub('kitchen', [live[1]!])).toBe('standby')
    expect(desiredHub('kitchen', [])).toBeUndefined()
  })
})

describe('arbitration score', () => {
  it('speech level over the mirror\'s own floor: a louder room with a louder floor does not win by volume alone', () => {
    const quietRoom = [...Array(15).fill(10), ...Array(8).fill(1000)] // floor 10, speech 1000: 40 dB
    const noisyRoom = [...Array(15).fill(500), ...Array(8).fill(5000)] // floor 500, speech 5000: 20 dB
    expect(snrDb(quietRoom)).toBeCloseTo(40, 0)
    expect(snrDb(noisyRoom)).toBeCloseTo(20, 0)
    expect(snrDb([])).toBe(-Infinity)
  })
})

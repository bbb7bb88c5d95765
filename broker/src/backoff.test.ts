import { describe, expect, it } from 'vitest'
import { Backoff } from './backoff.js'

describe('Backoff', () => {
  it('grows exponentially up to the 30 s cap when jitter picks the ceiling', () => {
    const b = new Backoff(undefined, () => 1)
    const delays = Array.from({ length: 9 }, () => b.next())
    expect(delays).toEqual([500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000])
  })

  it('never goes below minMs when jitter picks the floor', () => {
    const b = new Backoff(undefined, () => 0)
    expect(Array.from({ length: 5 }, () => b.next())).toEqual([100, 100, 100, 100, 100])
  })

  it('stays capped after many attempts', () => {
    const b = new Backoff(undefined, () => 1)
    for (let i = 0; i < 100; i++) b.next()
    expect(b.next()).toBe(30000)
  })

  it('starts over after reset', () => {
    const b = new Backoff(undefined, () => 1)
    b.next(); b.next(); b.next()
    b.reset()
    expect(b.next()).toBe(500)
    expect(b.next()).toBe(1000)
  })

  it('honours custom options', () => {
    const b = new Backoff({ initialMs: 10, maxMs: 50 }, () => 1)
    expect(Array.from({ length: 5 }, () => b.next())).toEqual([10, 20, 40, 50, 50])
  })

  it('spreads delays with real jitter so nodes do not reconnect in lockstep', () => {
    const b = new Backoff()
    for (let i = 0; i < 10; i++) b.next()
    const samples = Array.from({ length: 1000 }, () => b.next())
    expect(new Set(samples).size).toBeGreaterThan(100)
    expect(Math.min(...samples)).toBeGreaterThanOrEqual(100)
    expect(Math.max(...samples)).toBeLessThanOrEqual(30000)
    // full jitter: both halves of the range are used
    expect(samples.some((s) => s < 15000)).toBe(true)
    expect(samples.some((s) => s > 15000)).toBe(true)
  })
})

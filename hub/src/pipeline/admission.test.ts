import { describe, expect, it } from 'vitest'
import { AdmissionControl } from './admission.js'

describe('AdmissionControl', () => {
  it('runs up to maxConcurrent at once, queues up to queueMax, refuses the rest', () => {
    const a = new AdmissionControl<string>(2, 1)
    const ran: string[] = []
    const go = (s: string) => () => void ran.push(s)
    expect(a.admit('a', go('a'))).toBe('run')
    expect(a.admit('b', go('b'))).toBe('run')
    expect(a.admit('c', go('c'))).toBe('queued')
    expect(a.admit('d', go('d'))).toBe('busy')
    expect(ran).toEqual(['a', 'b'])
    expect([a.running, a.queued]).toEqual([2, 1])
  })

  it('a release hands the slot to the next in line, in order', () => {
    const a = new AdmissionControl<string>(1, 2)
    const ran: string[] = []
    for (const s of ['a', 'b', 'c']) a.admit(s, () => void ran.push(s))
    a.release()
    expect(ran).toEqual(['a', 'b'])
    expect([a.running, a.queued]).toEqual([1, 1])
    a.release()
    a.release()
    expect(ran).toEqual(['a', 'b', 'c'])
    expect([a.running, a.queued]).toEqual([0, 0])
    a.release() // never below zero
    expect(a.running).toBe(0)
  })

  it('withdraw takes a queued item out without running it', () => {
    const a = new AdmissionControl<string>(1, 2)
    const ran: string[] = []
    for (const s of ['a', 'b', 'c']) a.admit(s, () => void ran.push(s))
    expect(a.withdraw('b')).toBe(true)
    expect(a.withdraw('b')).toBe(false)
    expect(a.withdraw('a')).toBe(false) // running, not queued
    a.release()
    expect(ran).toEqual(['a', 'c'])
  })

  it('zero queue: everything past the slots is busy', () => {
    const a = new AdmissionControl<number>(1, 0)
    expect(a.admit(1, () => undefined)).toBe('run')
    expect(a.admit(2, () => undefined)).toBe('busy')
  })
})

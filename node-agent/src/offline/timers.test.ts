import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { OfflineTimers, parseTimerDuration, type OfflineTimer } from './timers.js'

describe('OfflineTimers', () => {
  let mono = 0
  beforeEach(() => {
    vi.useFakeTimers()
    mono = 0
  })
  afterEach(() => vi.useRealTimers())
  const advance = async (ms: number): Promise<void> => {
    mono += ms
    await vi.advanceTimersByTimeAsync(ms)
  }

  it('calls back when a timer ends, soonest first', async () => {
    const done: OfflineTimer[] = []
    const timers = new OfflineTimers({ onDone: (t) => { done.push(t) }, now: () => mono })
    const five = timers.set(300_000, 'five minutes')
    const one = timers.set(60_000, 'one minute')
    expect(timers.list().map((t) => [t.label, t.remainingMs])).toEqual([['one minute', 60_000], ['five minutes', 300_000]])
    await advance(59_999)
    expect(done).toEqual([])
    await advance(1)
    expect(done).toEqual([one])
    expect(timers.list()).toEqual([{ ...five, remainingMs: 240_000 }])
    await advance(240_000)
    expect(done.map((t) => t.label)).toEqual(['one minute', 'five minutes'])
    expect(timers.size).toBe(0)
  })

  it('cancels one or all', async () => {
    const onDone = vi.fn()
    const timers = new OfflineTimers({ onDone, now: () => mono })
    const a = timers.set(1000)
    timers.set(2000)
    timers.set(3000)
    expect(timers.cancel(a.id)).toBe(true)
    expect(timers.cancel(a.id)).toBe(false)
    expect(timers.cancelAll()).toBe(2)
    await advance(5000)
    expect(onDone).not.toHaveBeenCalled()
  })

  it('rejects bad durations and too many timers; callback errors go to onError', async () => {
    const onError = vi.fn()
    const timers = new OfflineTimers({ onDone: () => { throw new Error('speaker gone') }, onError, maxTimers: 2, now: () => mono })
    expect(() => timers.set(0)).toThrow(RangeError)
    expect(() => timers.set(Number.NaN)).toThrow(RangeError)
    expect(() => timers.set(2 * 86_400_000)).toThrow(RangeError)
    timers.set(10)
    timers.set(20)
    expect(() => timers.set(30)).toThrow('too many timers')
    await advance(20)
    expect(onError).toHaveBeenCalledTimes(2)
    const asyncFail = new OfflineTimers({ onDone: async () => { throw new Error('async') }, onError, now: () => mono })
    asyncFail.set(5)
    await advance(5)
    expect(onError).toHaveBeenCalledTimes(3)
  })
})

describe('parseTimerDuration', () => {
  it.each([
    ['set a timer for five minutes', 300_000],
    ['set a timer for a minute', 60_000],
    ['timer for twenty five seconds', 25_000],
    ['set a timer for one hour and ten minutes', 4_200_000],
    ['set a timer for half an hour', 1_800_000],
    ['set a timer for 10 minutes', 600_000],
    ['set a timer', undefined],
    ['what time is it', undefined],
  ])('%s', (text, ms) => {
    expect(parseTimerDuration(text)).toBe(ms)
  })
})

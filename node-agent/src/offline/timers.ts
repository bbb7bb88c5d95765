// Timers set while the hub is away: they run on the node (setTimeout), in memory only (a
// restart loses them), and call back when done so the agent can play the "timer done" clip.
// Remaining time uses a monotonic clock: an NTP step on a Pi without an RTC must not move them.
import { randomUUID } from 'node:crypto'

export interface OfflineTimer {
  id: string
  label: string
  durationMs: number
  /** Wall-clock end, for display (epoch ms, as computed when set). */
  endsAt: number
}

export interface OfflineTimersOptions {
  /** Called when a timer ends (not when cancelled). Errors are caught and passed to onError. */
  onDone: (timer: OfflineTimer) => void | Promise<void>
  onError?: (err: unknown, timer: OfflineTimer) => void
  /** Most timers at once (default 20). */
  maxTimers?: number
  /** Longest timer (default 24 h). */
  maxDurationMs?: number
  /** Monotonic clock, ms (default performance.now). */
  now?: () => number
}

interface Running extends OfflineTimer { handle: NodeJS.Timeout; dueMono: number }

export class OfflineTimers {
  private readonly timers = new Map<string, Running>()
  private readonly now: () => number

  constructor(private readonly opts: OfflineTimersOptions) {
    this.now = opts.now ?? (() => performance.now())
  }

  /** Starts a timer; throws RangeError for a bad duration or when too many run. */
  set(durationMs: number, label = ''): OfflineTimer {
    if (!Number.isFinite(durationMs) || durationMs <= 0 || durationMs > (this.opts.maxDurationMs ?? 86_400_000)) {
      throw new RangeError(`timer duration out of range: ${durationMs} ms`)
    }
    if (this.timers.size >= (this.opts.maxTimers ?? 20)) throw new RangeError('too many timers')
    const id = randomUUID()
    const t: Running = {
      id, label, durationMs, endsAt: Date.now() + durationMs, dueMono: this.now() + durationMs,
      handle: setTimeout(() => this.fire(id), durationMs),
    }
    this.timers.set(id, t)
    return this.view(t)
  }

  /** Cancels one timer; false if it is unknown or already done. */
  cancel(id: string): boolean {
    const t = this.timers.get(id)
    if (!t) return false
    clearTimeout(t.handle)
    this.timers.delete(id)
    return true
  }

  /** Cancels every timer (e.g. "cancel the timer" with one running, or shutdown); returns how many. */
  cancelAll(): number {
    const n = this.timers.size
    for (const t of this.timers.values()) clearTimeout(t.handle)
    this.timers.clear()
    return n
  }

  /** Running timers, soonest first, with the time left. */
  list(): (OfflineTimer & { remainingMs: number })[] {
    const now = this.now()
    return [...this.timers.values()]
      .sort((a, b) => a.dueMono - b.dueMono)
      .map((t) => ({ ...this.view(t), remainingMs: Math.max(0, Math.round(t.dueMono - now)) }))
  }

  get size(): number {
    return this.timers.size
  }

  private view(t: Running): OfflineTimer {
    return { id: t.id, label: t.label, durationMs: t.durationMs, endsAt: t.endsAt }
  }

  private fire(id: string): void {
    const t = this.timers.get(id)
    if (!t) return
    this.timers.delete(id)
    const view = this.view(t)
    try {
      const r = this.opts.onDone(view)
      if (r && typeof (r as Promise<void>).catch === 'function') (r as Promise<void>).catch((err: unknown) => this.opts.onError?.(err, view))
    } catch (err) {
      this.opts.onError?.(err, view)
    }
  }
}

const NUMBERS: Record<string, number> = {
  a: 1, an: 1, one: 1, two: 2, three: 3, four: 4, five: 5, six: 6, seven: 7, eight: 8, nine: 9, ten: 10,
  eleven: 11, twelve: 12, thirteen: 13, fourteen: 14, fifteen: 15, sixteen: 16, seventeen: 17, eighteen: 18,
  nineteen: 19, twenty: 20, thirty: 30, forty: 40, fifty: 50, sixty: 60, ninety: 90,
}
const UNITS: Record<string, number> = { second: 1000, minute: 60_000, hour: 3_600_000 }

/**
 * The duration in a timer phrase ("set a timer for five minutes", "timer for twenty five
 * seconds", "one hour and ten minutes", "half an hour", "10 minutes"); undefined if none.
 */
export function parseTimerDuration(text: string): number | undefined {
  const words = text.toLowerCase().replace(/[^a-z0-9 ]+/g, ' ').split(/\s+/).filter(Boolean)
  let total = 0
  let found = false
  let num: number | undefined
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!
    if (w === 'half' && (words[i + 1] === 'an' || words[i + 1] === 'a') && words[i + 2]?.startsWith('hour')) {
      total += 1_800_000
      found = true
      i += 2
      num = undefined
      continue
    }
    const unit = UNITS[w.replace(/s$/, '')]
    if (unit !== undefined) {
      if (num !== undefined) {
        total += num * unit
        found = true
      }
      num = undefined
      continue
    }
    const n = /^\d+$/.test(w) ? Number(w) : NUMBERS[w]
    if (n !== undefined) {
      // "twenty five": tens followed by a unit digit add up.
      num = num !== undefined && num >= 20 && num % 10 === 0 && n < 10 ? num + n : n
    } else if (w !== 'and') {
      num = undefined
    }
  }
  return found && total > 0 ? total : undefined
}

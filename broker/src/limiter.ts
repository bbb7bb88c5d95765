// Wrong-password limits that a flood cannot wipe. The old limiter cleared its whole map when it
// passed 10,000 keys, so 10,000 made-up usernames unlocked a locked one. Here the map is bounded,
// a locked entry is never evicted by a new key, and when every slot is locked a new key is
// refused instead of an old lock being dropped.

export interface FailureLimiterOptions {
  /** Failures inside `windowMs` that lock a key. */
  max?: number
  windowMs?: number
  /** Keys tracked at most; bounds memory. */
  maxKeys?: number
}

export class FailureLimiter {
  /** key -> failure times (at most `max`, oldest first). Insertion order = least recently failed first. */
  private readonly failures = new Map<string, number[]>()
  readonly max: number
  readonly windowMs: number
  readonly maxKeys: number

  constructor(opts: FailureLimiterOptions | number = {}, windowMs?: number) {
    const o = typeof opts === 'number' ? { max: opts, windowMs } : opts
    this.max = o.max ?? 5
    this.windowMs = o.windowMs ?? 60_000
    this.maxKeys = o.maxKeys ?? 10_000
  }

  get size(): number {
    return this.failures.size
  }

  private recent(key: string, now: number): number[] {
    const list = this.failures.get(key)
    if (!list) return []
    const kept = list.filter((t) => now - t < this.windowMs)
    if (kept.length === 0) this.failures.delete(key)
    else if (kept.length !== list.length) this.failures.set(key, kept)
    return kept
  }

  blocked(key: string, now = Date.now()): boolean {
    return this.recent(key, now).length >= this.max
  }

  /** Whether a failure for `key` could be recorded now (false: the table is full of locks). */
  hasRoom(key: string, now = Date.now()): boolean {
    return this.failures.has(key) || this.failures.size < this.maxKeys || this.evictOne(now, false)
  }

  /** Records a failure; false when the table is full of locked keys and this new key was not recorded. */
  fail(key: string, now = Date.now()): boolean {
    const list = this.recent(key, now)
    if (list.length === 0 && this.failures.size >= this.maxKeys && !this.evictOne(now, true)) return false
    list.push(now)
    if (list.length > this.max) list.shift()
    // Re-insert so the map's order stays "least recently failed first".
    this.failures.delete(key)
    this.failures.set(key, list)
    return true
  }

  /** Frees a slot: expired entries first, else the least recently failed entry that is not locked. */
  private evictOne(now: number, evict: boolean): boolean {
    let candidate: string | undefined
    for (const [key, list] of this.failures) {
      const live = list.filter((t) => now - t < this.windowMs).length
      if (live === 0) {
        if (evict) this.failures.delete(key)
        return true
      }
      if (candidate === undefined && live < this.max) candidate = key
      if (candidate !== undefined && !evict) return true
    }
    if (candidate === undefined) return false
    if (evict) this.failures.delete(candidate)
    return true
  }
}

export type RefusalReason = string

/**
 * Connection refusals as one summary line per interval, not one line per attempt: a flood of
 * 10,000 bad CONNECTs wrote 10,000 warn lines (1.9 MB). The first refusal of a quiet interval
 * is logged at once, so a single mistyped password still shows up immediately.
 */
export class RefusalLog {
  private counts = new Map<RefusalReason, number>()
  private usernames = new Set<string>()
  private sources = new Set<string>()
  private timer: NodeJS.Timeout | undefined
  private suppressed = 0

  constructor(
    private readonly write: (fields: Record<string, unknown>, msg: string) => void,
    private readonly intervalMs = 60_000,
  ) {}

  record(reason: RefusalReason, detail: { username?: string; source: string; clientId?: string }): void {
    if (!this.timer) {
      this.write({ reason, username: detail.username, source: detail.source, clientId: detail.clientId }, 'mqtt connection refused')
      this.timer = setTimeout(() => this.flush(), this.intervalMs)
      this.timer.unref()
      return
    }
    this.suppressed++
    this.counts.set(reason, (this.counts.get(reason) ?? 0) + 1)
    // Bounded: the summary says how many distinct names, up to a cap.
    if (detail.username !== undefined && this.usernames.size < 1000) this.usernames.add(detail.username)
    if (this.sources.size < 1000) this.sources.add(detail.source)
  }

  flush(): void {
    if (this.timer) clearTimeout(this.timer)
    this.timer = undefined
    if (this.suppressed === 0) return
    this.write({
      refused: this.suppressed, byReason: Object.fromEntries(this.counts), usernames: this.usernames.size, sources: this.sources.size, intervalS: this.intervalMs / 1000,
    }, 'mqtt connections refused (summary)')
    this.counts = new Map()
    this.usernames = new Set()
    this.sources = new Set()
    this.suppressed = 0
  }

  stop(): void {
    this.flush()
  }
}

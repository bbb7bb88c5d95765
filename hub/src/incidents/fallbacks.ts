// Fallback bursts from the pipeline's own count: the fallback chains (speech FallbackChain) raise
// mirrormesh_fallback_total{stage,from,to,reason}; this reads that counter every poll and groups
// new steps by stage + reason. A burst closes once no step was added for the settle window, and
// becomes one record with its count (a failing engine makes one entry, not one per turn).
import type { Registry } from 'prom-client'
import type { FallbackBurst, Recovery } from './records.js'

interface Burst { start: number; last: number; count: number; steps: Set<string> }

export interface FallbackBurstsOptions {
  metrics: Registry
  settleMs: number
  pollMs: number
  onRecord: (r: FallbackBurst) => void
  recovery: (stage: string) => Promise<Recovery>
  now?: () => number
}

export class FallbackBursts {
  private readonly seen = new Map<string, number>()
  private readonly open = new Map<string, Burst>()
  private timer: NodeJS.Timeout | undefined
  private readonly now: () => number

  constructor(private readonly opts: FallbackBurstsOptions) {
    this.now = opts.now ?? Date.now
  }

  async start(): Promise<void> {
    await this.poll(false) // counts from before this start (none in a fresh process) are not a burst
    this.timer = setInterval(() => void this.poll(true), this.opts.pollMs)
    this.timer.unref()
  }

  async stop(): Promise<void> {
    clearInterval(this.timer)
    await this.poll(true)
    for (const key of [...this.open.keys()]) await this.close(key)
  }

  private async poll(count: boolean): Promise<void> {
    const metric = this.opts.metrics.getSingleMetric('mirrormesh_fallback_total')
    const now = this.now()
    if (metric) {
      const { values } = await metric.get()
      for (const v of values) {
        const l = v.labels as Record<string, string | undefined>
        const id = `${l.stage}\u0000${l.from}\u0000${l.to}\u0000${l.reason}`
        const added = v.value - (this.seen.get(id) ?? 0)
        this.seen.set(id, v.value)
        if (!count || added <= 0) continue
        const key = `${l.stage ?? '?'}\u0000${l.reason ?? '?'}`
        const b = this.open.get(key) ?? { start: now, last: now, count: 0, steps: new Set<string>() }
        b.count += added
        b.last = now
        b.steps.add(`${l.from ?? '?'}→${l.to ?? '?'}`)
        this.open.set(key, b)
      }
    }
    for (const [key, b] of this.open) if (now - b.last >= this.opts.settleMs) await this.close(key)
  }

  private async close(key: string): Promise<void> {
    const b = this.open.get(key)
    if (!b) return
    this.open.delete(key)
    const [stage = '?', reason = '?'] = key.split('\u0000')
    this.opts.onRecord({
      type: 'fallback_burst', stage, reason, steps: [...b.steps], count: b.count,
      at: this.now(), start: b.start, end: b.last, durationMs: b.last - b.start, recovery: await this.opts.recovery(stage),
    })
  }
}

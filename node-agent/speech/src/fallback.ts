// Ordered engines for one stage. Picks the first healthy one; when one fails, the
// step to the next is counted (stage, from, to, reason) and logged once per reason.
import type { Logger } from '@mirrormesh/broker'
import { LogLimiter } from '@mirrormesh/broker'
import type { Counter } from 'prom-client'
import { EngineError, type Engine } from './types.js'

export class FallbackChain<E extends Engine> {
  private readonly logOnce = new LogLimiter(10 * 60_000)

  constructor(readonly stage: string, readonly engines: E[], private readonly metrics: { fallback: Counter<'stage' | 'from' | 'to' | 'reason'> }, private readonly log: Logger) {}

  /** Healthy engines in order; skipped ones are counted as fallbacks with reason `unhealthy`. */
  candidates(): E[] {
    const ok: E[] = []
    let from: E | undefined
    for (const e of this.engines) {
      if (e.health() === 'down') {
        from ??= e
        continue
      }
      if (from) this.step(from.name, e.name, downReason(from))
      from = undefined
      ok.push(e)
    }
    if (from) this.step(from.name, 'none', downReason(from))
    return ok
  }

  /** Run `fn` on each healthy engine until one succeeds; throws the last error if all fail. */
  async run<T>(fn: (engine: E) => Promise<T>, signal?: AbortSignal): Promise<{ engine: E; result: T }> {
    const list = this.candidates()
    let lastErr: unknown = new EngineError('no_engine', `no healthy ${this.stage} engine`)
    for (let i = 0; i < list.length; i++) {
      const engine = list[i]!
      try {
        return { engine, result: await fn(engine) }
      } catch (err) {
        if (signal?.aborted) throw err
        lastErr = err
        this.step(engine.name, list[i + 1]?.name ?? 'none', reasonOf(err), err)
      }
    }
    throw lastErr
  }

  step(from: string, to: string, reason: string, err?: unknown): void {
    this.metrics.fallback.inc({ stage: this.stage, from, to, reason })
    if (this.logOnce.allow(`${from}>${to}:${reason}`)) {
      this.log.warn({ stage: this.stage, from, to, reason, err: err instanceof Error ? err.message : undefined }, 'fallback taken')
    }
  }
}

export function reasonOf(err: unknown): string {
  return err instanceof EngineError ? err.reason : 'error'
}

function downReason(e: Engine): string {
  return (e as { downReason?: string }).downReason ?? 'unhealthy'
}

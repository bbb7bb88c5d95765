// Exponential backoff with full jitter, capped: after a power cut every node picks a
// different delay, so the broker sees no reconnect storm.
export interface BackoffOptions {
  /** First delay upper bound. */
  initialMs: number
  /** Never wait longer than this. */
  maxMs: number
  /** Lower bound of every delay. */
  minMs?: number
  /** Growth per attempt (default 2). */
  factor?: number
}

export const defaultBackoffOptions: BackoffOptions = { initialMs: 500, maxMs: 30_000, minMs: 100 }

export class Backoff {
  private attempt = 0
  constructor(private readonly opts: BackoffOptions = defaultBackoffOptions, private readonly random = Math.random) {}

  next(): number {
    const ceiling = Math.min(this.opts.maxMs, this.opts.initialMs * (this.opts.factor ?? 2) ** this.attempt)
    this.attempt = Math.min(this.attempt + 1, 60)
    const min = Math.min(this.opts.minMs ?? 0, ceiling)
    return Math.round(min + this.random() * (ceiling - min))
  }

  reset(): void {
    this.attempt = 0
  }
}

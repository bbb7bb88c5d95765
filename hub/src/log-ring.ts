// The hub's recent log lines, kept in memory so a bug bundle can gather the lines around one
// turn after the fact (journald may be remote, rotated or unreadable to the operator). A pino
// destination tee: every line still goes to stdout; the ring keeps the last `capacity` lines
// (and at most `maxBytes`), as written, so after pino's redaction. Parsed only when asked.
import type { LogRecord } from '@mirrormesh/broker'

/** What pino writes to: a SonicBoom or any stream with write(), flushed on exit when it can be. */
export interface LogDestination {
  write(line: string): unknown
  flush?(cb?: (err?: Error | null) => void): void
  flushSync?(): void
}

export interface LogRingOptions {
  /** Lines kept (the oldest go first). */
  capacity?: number
  /** Bytes kept across all lines; one line longer than this is dropped. */
  maxBytes?: number
}

export const defaultLogRingOptions: Required<LogRingOptions> = { capacity: 5000, maxBytes: 8 * 1024 * 1024 }

export class LogRing {
  readonly capacity: number
  private readonly maxBytes: number
  private readonly lines: string[] = []
  private bytes = 0

  constructor(opts: LogRingOptions = {}) {
    this.capacity = opts.capacity ?? defaultLogRingOptions.capacity
    this.maxBytes = opts.maxBytes ?? defaultLogRingOptions.maxBytes
  }

  get size(): number { return this.lines.length }

  push(chunk: string): void {
    // pino writes one line per call; split anyway in case a stream batches them.
    for (const line of chunk.split('\n')) {
      if (!line || line.length > this.maxBytes) continue
      this.lines.push(line)
      this.bytes += line.length
    }
    while (this.lines.length > this.capacity || this.bytes > this.maxBytes) this.bytes -= this.lines.shift()!.length
  }

  /** Every kept line that parses as a log record, oldest first, without `pii`. */
  records(): LogRecord[] {
    const out: LogRecord[] = []
    for (const line of this.lines) {
      let rec: unknown
      try { rec = JSON.parse(line) } catch { continue }
      if (!rec || typeof rec !== 'object' || typeof (rec as LogRecord).time !== 'number') continue
      delete (rec as Record<string, unknown>).pii
      out.push(rec as LogRecord)
    }
    return out
  }

  /** A destination for pino that writes to `next` and keeps a copy here. */
  tee(next: LogDestination): LogDestination {
    return {
      write: (line: string) => {
        this.push(line)
        return next.write(line)
      },
      flush: (cb) => (next.flush ? next.flush(cb) : cb?.()),
      flushSync: () => next.flushSync?.(),
    }
  }
}

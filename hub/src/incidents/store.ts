// Writes each incident record twice — a JSON line and a runbook entry — each appended whole and
// fsync'd (appendWhole cuts a failed append back, so a full disk leaves no partial line or entry).
// A write that fails is kept in memory (bounded) and tried again with the next record and on a
// timer, so a disk that fills and frees loses nothing; the error is logged clearly once per spell.
import { mkdir, open } from 'node:fs/promises'
import { join } from 'node:path'
import { appendWhole, fsyncDir, type Logger } from '@mirrormesh/broker'
import { utcDay, type IncidentRecord } from './records.js'
import { renderEntry, runbookHeader } from './runbook.js'

interface Pending { file: string; text: string; header?: string }

export interface IncidentStoreOptions {
  stateDir: string
  log: Logger
  /** Writes kept for a retry at most (oldest dropped beyond it, and said so). */
  maxPending?: number
  retryMs?: number
}

export class IncidentStore {
  readonly recordsDir: string
  readonly entriesDir: string
  /** Records written (both views on disk). */
  written = 0
  private pending: Pending[] = []
  private chain: Promise<void> = Promise.resolve()
  private failing = false
  private retryTimer: NodeJS.Timeout | undefined

  constructor(private readonly opts: IncidentStoreOptions) {
    this.recordsDir = join(opts.stateDir, 'incidents')
    this.entriesDir = join(opts.stateDir, 'entries')
  }

  get pendingCount(): number { return this.pending.length }

  /** Queues both views of `r`; resolves once written or kept for a retry. Never rejects. */
  add(r: IncidentRecord): Promise<void> {
    const day = utcDay(r.start)
    this.pending.push(
      { file: join(this.recordsDir, `${day}.jsonl`), text: JSON.stringify(r) + '\n' },
      { file: join(this.entriesDir, `${day}-runbook.md`), text: renderEntry(r), header: runbookHeader(day) },
    )
    const max = this.opts.maxPending ?? 200
    if (this.pending.length > max) {
      const dropped = this.pending.splice(0, this.pending.length - max)
      this.opts.log.error({ dropped: dropped.length }, 'incident writes dropped: the disk has been failing too long')
    }
    return this.flush()
  }

  /** Tries every pending write in order; stops at the first failure (order is kept). */
  flush(): Promise<void> {
    this.chain = this.chain.then(() => this.drain())
    return this.chain
  }

  stop(): Promise<void> {
    clearTimeout(this.retryTimer)
    this.retryTimer = undefined
    return this.flush()
  }

  private async drain(): Promise<void> {
    while (this.pending.length) {
      const p = this.pending[0]!
      try {
        await append(p)
      } catch (err) {
        const e = err as NodeJS.ErrnoException
        if (!this.failing) {
          this.failing = true
          this.opts.log.error({ file: p.file, code: e.code, err: e.message, pending: this.pending.length },
            `incident journal not written: ${e.code === 'ENOSPC' ? 'disk full (ENOSPC)' : e.message}; kept in memory and retried (nothing partial on disk)`)
        }
        this.retryTimer ??= setTimeout(() => { this.retryTimer = undefined; void this.flush() }, this.opts.retryMs ?? 30_000)
        this.retryTimer.unref()
        return
      }
      this.pending.shift()
      if (p.file.endsWith('.md')) this.written++
      if (this.failing) {
        this.failing = false
        this.opts.log.info({ file: p.file }, 'incident journal writable again; kept entries written')
      }
    }
  }
}

async function append(p: Pending): Promise<void> {
  await mkdir(join(p.file, '..'), { recursive: true })
  const fh = await open(p.file, 'a', 0o640)
  try {
    // A new day's runbook starts with its title, in the same whole append as the first entry.
    const fresh = (await fh.stat()).size === 0
    await appendWhole(fh, fresh && p.header ? p.header + p.text : p.text)
    // A new file's name must survive a power cut too, not only its bytes.
    if (fresh) await fsyncDir(join(p.file, '..'))
  } finally {
    await fh.close()
  }
}

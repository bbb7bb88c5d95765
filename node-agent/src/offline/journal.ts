// What the node did while the hub was away, for the hub once it is back.
//   OfflineJournal: <dir>/offline-journal.jsonl, one JSON entry per line, appended with fsync;
//     bounded (newest maxEntries / maxBytes kept); entries leave it when the hub has answered
//     them (replay.ts: request/response by transaction). Re-read at open; a torn last line (power cut mid-append) is dropped.
//     A full disk never loses a turn the process still holds, nor throws: an entry that cannot
//     be written stays in memory (replayed to the hub all the same), a half-written line is cut
//     off again, and the next write that succeeds rewrites the whole file.
//   FallbackLog: <dir>/fallback.log, human-readable lines, rotated by size to fallback.log.1.
import { randomUUID } from 'node:crypto'
import fs from 'node:fs/promises'
import path from 'node:path'
import { appendWhole, writeAtomic, type BundleReply, type Logger } from '@mirrormesh/broker'

// Field types follow the contract's offlineTurn (broker/src/replay.ts): `at` epoch ms,
// `skill` and `action` left out when there are none.
export interface JournalEntry {
  id: string
  /** When the entry was written (epoch ms). */
  ts: number
  /** When the turn happened (epoch ms). */
  at: number
  transcript: string
  /** Reply text given ('' if none). */
  reply: string
  /** Skill that answered; absent for a fallback reply. */
  skill?: string
  /** House action the hub should carry out late, if the reply had one. */
  action?: NonNullable<BundleReply['action']>
}

export type NewJournalEntry = Omit<JournalEntry, 'id' | 'ts' | 'at'> & { at?: number }

export interface JournalLimits {
  /** Newest entries kept (default 500). */
  maxEntries?: number
  /** Size the file may reach before it is trimmed (default 1 MiB). */
  maxBytes?: number
}

const FILE = 'offline-journal.jsonl'


/** Replaces `file` with `data` atomically (temp file, fsync, rename, fsync of the directory). */
export { writeAtomic }

/** Appends whole lines to `file` (see appendWhole in @mirrormesh/broker: no half line survives a full disk). */
async function appendLines(file: string, data: string, sync: boolean): Promise<void> {
  const fh = await fs.open(file, 'a')
  try {
    await appendWhole(fh, data, sync)
  } finally {
    await fh.close()
  }
}

function diskError(err: unknown): string {
  return (err as NodeJS.ErrnoException)?.code === 'ENOSPC' ? 'disk full (ENOSPC)' : (err as Error)?.message ?? String(err)
}

function isEntry(x: unknown): x is JournalEntry {
  const e = x as JournalEntry
  return !!e && typeof e === 'object' && typeof e.id === 'string' && typeof e.ts === 'number' &&
    typeof e.at === 'number' && typeof e.transcript === 'string' && typeof e.reply === 'string'
}

/** Serializes async work (appends, rewrites) on one file. */
class Queue {
  private tail: Promise<unknown> = Promise.resolve()
  run<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.tail.then(fn, fn)
    this.tail = p.catch(() => undefined)
    return p
  }
}

export class OfflineJournal {
  readonly file: string
  private entries: JournalEntry[] = []
  private bytes = 0
  private readonly queue = new Queue()
  private readonly maxEntries: number
  private readonly maxBytes: number
  /** The file lags behind `entries` (a write failed): the next write rewrites it whole. */
  private unsaved = false

  private constructor(readonly dir: string, limits: JournalLimits, private readonly log?: Logger) {
    this.file = path.join(dir, FILE)
    this.maxEntries = Math.max(1, limits.maxEntries ?? 500)
    this.maxBytes = Math.max(1024, limits.maxBytes ?? 1024 * 1024)
  }

  static async open(dir: string, limits: JournalLimits = {}, log?: Logger): Promise<OfflineJournal> {
    const j = new OfflineJournal(dir, limits, log)
    await fs.mkdir(dir, { recursive: true })
    await j.load()
    return j
  }

  private async load(): Promise<void> {
    let text: string
    try {
      text = await fs.readFile(this.file, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return
      throw err
    }
    let bad = 0
    const lines = text.split('\n')
    for (const line of lines) {
      if (!line.trim()) continue
      try {
        const e: unknown = JSON.parse(line)
        if (isEntry(e)) this.entries.push(e)
        else bad++
      } catch {
        bad++ // a torn last line after a power cut, or garbage
      }
    }
    this.bytes = Buffer.byteLength(text)
    // Rewrite when something was dropped or the file does not end in a newline: the next
    // append must not glue onto a torn line. Also applies the limits if they shrank.
    if (bad > 0 || (text.length > 0 && !text.endsWith('\n')) || this.overLimit()) {
      this.log?.warn({ file: this.file, dropped: bad, kept: this.entries.length }, 'offline journal repaired')
      this.trimToLimits()
      await this.save()
    }
  }

  /** Entries the hub has not answered, oldest first. */
  pending(): JournalEntry[] {
    return [...this.entries]
  }

  get size(): number {
    return this.entries.length
  }

  /**
   * Adds an entry. Never rejects for a failed write (a full disk): the entry is kept in memory
   * (so it is still replayed to the hub), the failure is logged, and the next write retries.
   */
  append(entry: NewJournalEntry): Promise<JournalEntry> {
    return this.queue.run(async () => {
      const now = Date.now()
      const e: JournalEntry = {
        id: randomUUID(),
        ts: now,
        at: entry.at ?? now,
        // Bounded so that one entry always fits the byte limit.
        transcript: entry.transcript.slice(0, 1000),
        reply: entry.reply.slice(0, 1000),
      }
      if (entry.skill) e.skill = entry.skill
      if (entry.action) e.action = entry.action
      const line = `${JSON.stringify(e)}\n`
      this.entries.push(e)
      this.bytes += Buffer.byteLength(line)
      let whole = this.unsaved
      if (this.overLimit()) {
        const before = this.entries.length
        this.trimToLimits()
        this.log?.warn({ dropped: before - this.entries.length, kept: this.entries.length }, 'offline journal full: oldest entries dropped')
        whole = true
      }
      if (whole) {
        await this.save()
      } else {
        try {
          await appendLines(this.file, line, true)
        } catch (err) {
          this.failed(err)
        }
      }
      return e
    })
  }

  /** Removes entries the hub answered; returns how many were removed. Never rejects for a failed write. */
  ack(ids: Iterable<string>): Promise<number> {
    const set = new Set(ids)
    return this.queue.run(async () => {
      const before = this.entries.length
      this.entries = this.entries.filter((e) => !set.has(e.id))
      const removed = before - this.entries.length
      if (removed > 0) {
        this.bytes = this.entries.reduce((n, e) => n + Buffer.byteLength(JSON.stringify(e)) + 1, 0)
        // If this fails the file still holds acknowledged entries: after a restart they would be
        // replayed once more, which the hub ignores (it dedupes by id).
        await this.save()
      }
      return removed
    })
  }

  private overLimit(): boolean {
    return this.entries.length > this.maxEntries || this.bytes > this.maxBytes
  }

  /** Keeps the newest entries within maxEntries, and within half of maxBytes so trims are rare. */
  private trimToLimits(): void {
    let keep = Math.min(this.entries.length, this.maxEntries)
    let bytes = 0
    const budget = this.bytes > this.maxBytes ? this.maxBytes / 2 : this.maxBytes
    let i = this.entries.length
    while (i > this.entries.length - keep) {
      const b = Buffer.byteLength(JSON.stringify(this.entries[i - 1])) + 1
      if (bytes + b > budget) break
      bytes += b
      i--
    }
    keep = this.entries.length - i
    this.entries = this.entries.slice(this.entries.length - keep)
    this.bytes = bytes
  }

  /** Writes every entry to the file anew; a failure is logged and left for the next write. */
  private async save(): Promise<void> {
    const text = this.entries.map((e) => `${JSON.stringify(e)}\n`).join('')
    try {
      await writeAtomic(this.file, text)
    } catch (err) {
      this.failed(err)
      return
    }
    this.bytes = Buffer.byteLength(text)
    if (this.unsaved) this.log?.info({ file: this.file, entries: this.entries.length }, 'offline journal written again after an earlier failure')
    this.unsaved = false
  }

  private failed(err: unknown): void {
    this.unsaved = true
    this.log?.error({ file: this.file, err: (err as Error)?.message, pending: this.entries.length },
      `offline journal not written: ${diskError(err)}; its ${this.entries.length} pending turn(s) are kept in memory for the hub and written out at the next journal write`)
  }
}

/** Human-readable record of offline turns: "<iso> <state> heard="…" replied="…"". Two files kept. */
export class FallbackLog {
  readonly file: string
  private readonly queue = new Queue()
  private size: number | undefined

  constructor(readonly dir: string, private readonly maxBytes = 256 * 1024) {
    this.file = path.join(dir, 'fallback.log')
  }

  write(state: string, heard: string, replied: string, at = new Date()): Promise<void> {
    // JSON string escaping keeps one turn on one line whatever was heard.
    const line = `${at.toISOString()} ${state} heard=${JSON.stringify(heard)} replied=${JSON.stringify(replied)}\n`
    return this.queue.run(async () => {
      await fs.mkdir(this.dir, { recursive: true })
      if (this.size === undefined) this.size = await fs.stat(this.file).then((s) => s.size, () => 0)
      if (this.size > 0 && this.size + Buffer.byteLength(line) > this.maxBytes) {
        await fs.rename(this.file, `${this.file}.1`)
        this.size = 0
      }
      // On a full disk this rejects and leaves no half line behind.
      await appendLines(this.file, line, false)
      this.size += Buffer.byteLength(line)
    })
  }
}

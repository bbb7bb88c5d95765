// Offline-turn journal ingest.
// Nodes answer from the offline bundle while the hub is gone and keep a journal; once back
// they replay it as a request, nodes/{id}/request/replay {transaction, turns:[…]}. The hub
// checks each turn on its own (offlineTurn, declared in the contract), keeps each once (dedup
// by node + id, persisted in <stateDir>/incidents/offline-turns.jsonl) and answers on nodes/{id}/response/replay {transaction, status:'ok', data:{kept,
// duplicate, invalid}} only once the kept turns are fsync'd — or {status:'error'} when they
// could not be written, so that the node keeps them and asks again.
// A house action asked for offline is recorded, never published: the device could not be
// reached then (the node said so), and a light switching minutes later for a request that
// may have been misheard is worse than none. The operator sees it in GET /api/offline-turns.
// Node outages and other incidents: hub/src/incidents (same folder, YYYY-MM-DD.jsonl).
import { mkdir, open, readFile, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { Counter, type Registry } from 'prom-client'
import { appendWhole, offlineTurn as offlineTurnSchema, type Logger, type ReplayRequest, type ReplayResponse, type ReplayResult, type OfflineTurnView } from '@mirrormesh/broker'

/** A kept offline turn: what GET /api/offline-turns lists. */
export type OfflineTurn = OfflineTurnView

export interface OfflineTurnIo {
  /** nodes/{id}/response/replay: the answer to a replay request. */
  respond(nodeId: string, response: ReplayResponse): void
  /** Not called: late house actions are recorded, not published (kept for the feature's wiring). */
  act?(component: string, action: { action: string; room: string | null; state?: string; nodeId: string; offline: true; at: number }): void
}

export interface OfflineTurnLogOptions {
  stateDir: string
  io: OfflineTurnIo
  log: Logger
  metrics?: Registry
  /** Turns kept in memory for GET /api/offline-turns (default 1000). */
  maxInMemory?: number
  /** Requests arriving within this window share one write + fsync (default 10 ms). */
  commitDelayMs?: number
  now?: () => number
}

const key = (nodeId: string, id: string): string => `${nodeId}\u0000${id}`

/** Turns waiting for one write + fsync, and who waits for it. */
interface Commit { turns: OfflineTurn[]; done: (ok: boolean) => void }

export class OfflineTurnLog {
  readonly dir: string
  readonly file: string
  private readonly seen = new Set<string>()
  private turns: OfflineTurn[] = []
  private fh: FileHandle | undefined
  private queued: Commit[] = []
  private flushTimer: NodeJS.Timeout | undefined
  private flushing: Promise<void> = Promise.resolve()
  private readonly counter: Counter<'result'> | undefined
  private readonly now: () => number

  constructor(private readonly opts: OfflineTurnLogOptions) {
    this.dir = join(opts.stateDir, 'incidents')
    this.file = join(this.dir, 'offline-turns.jsonl')
    this.now = opts.now ?? Date.now
    this.counter = opts.metrics
      ? (opts.metrics.getSingleMetric('mirrormesh_offline_turns_total') as Counter<'result'> | undefined)
        ?? new Counter({ name: 'mirrormesh_offline_turns_total', help: 'Offline turns replayed by nodes, by result (new, duplicate, invalid)', labelNames: ['result'], registers: [opts.metrics] })
      : undefined
  }

  /** Load the turns already kept (their ids dedup replays after a restart). */
  async start(): Promise<void> {
    await mkdir(this.dir, { recursive: true })
    const text = await readFile(this.file, 'utf8').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return ''
      throw err
    })
    let bad = 0
    for (const line of text.split('\n')) {
      if (!line.trim()) continue
      try {
        const t = JSON.parse(line) as OfflineTurn
        if (typeof t.nodeId !== 'string' || typeof t.id !== 'string') { bad++; continue }
        this.remember(t)
      } catch {
        bad++ // a torn last line after a crash
      }
    }
    if (bad) this.opts.log.warn({ file: this.file, bad }, 'offline-turn journal: unreadable lines skipped')
    this.fh = await open(this.file, 'a')
  }

  async close(): Promise<void> {
    if (this.flushTimer) { clearTimeout(this.flushTimer); this.flushTimer = undefined }
    await this.flush()
    await this.fh?.close()
    this.fh = undefined
  }

  /** Newest first. */
  list(limit = this.opts.maxInMemory ?? 1000): OfflineTurn[] {
    return this.turns.slice(-limit).reverse()
  }

  get size(): number {
    return this.seen.size
  }

  /**
   * A replay request from `nodeId` (nodes/{id}/request/replay, already checked against the
   * contract; its turns are checked here, one by one). Answers through io.respond once the
   * kept turns are on disk, and resolves with that answer. Never rejects.
   */
  async handle(nodeId: string, req: ReplayRequest): Promise<ReplayResponse> {
    const data: ReplayResult = { kept: [], duplicate: [], invalid: [] }
    const fresh: OfflineTurn[] = []
    let unnamed = 0
    for (const raw of req.turns) {
      const r = this.classify(nodeId, raw)
      if (r.result === 'new') { fresh.push(r.turn); data.kept.push(r.turn.id) }
      else if (r.result === 'duplicate') data.duplicate.push(r.id)
      else if (r.id !== undefined) data.invalid.push({ id: r.id, error: r.error })
      else unnamed++
      this.counter?.inc({ result: r.result })
    }
    if (unnamed) this.opts.log.warn({ nodeId, transaction: req.transaction, unnamed }, 'offline turns without a usable id refused; they cannot be answered')
    // A duplicate may be a turn of another request still waiting for its fsync: answering
    // it waits for that write too (the commit chain is in order), and is checked after it.
    const ok = await this.commit(fresh)
    const lost = data.duplicate.filter((id) => !this.seen.has(key(nodeId, id)))
    const res: ReplayResponse = ok && lost.length === 0
      ? { v: 1, ts: this.now(), transaction: req.transaction, status: 'ok', data }
      : { v: 1, ts: this.now(), transaction: req.transaction, status: 'error', error: 'offline-turn journal write failed; replay again later' }
    const lateActions = res.status === 'ok' ? fresh.filter((t) => t.action).length : 0
    if (lateActions) this.opts.log.info({ nodeId, actions: lateActions }, 'offline house actions recorded, not executed late')
    this.opts.log.info({ nodeId, transaction: req.transaction, status: res.status, kept: data.kept.length, duplicate: data.duplicate.length, invalid: data.invalid.length + unnamed }, 'offline turns replayed')
    this.opts.io.respond(nodeId, res)
    return res
  }

  private classify(nodeId: string, raw: unknown):
    | { result: 'new'; turn: OfflineTurn }
    | { result: 'duplicate'; id: string }
    | { result: 'invalid'; id: string | undefined; error: string } {
    const res = offlineTurnSchema.safeParse(raw)
    if (!res.success) {
      const id = (raw as { id?: unknown } | null)?.id
      const issue = res.error.issues[0]
      const error = (issue ? `${issue.path.join('.') || '(root)'}: ${issue.message}` : 'invalid').slice(0, 256)
      this.opts.log.warn({ nodeId, id, issue: error }, 'offline turn rejected')
      // Named in the answer (when it has a usable id) so that the node trims it: never replayed forever.
      return { result: 'invalid', id: typeof id === 'string' && id.length > 0 && id.length <= 128 ? id : undefined, error }
    }
    const e = res.data
    if (this.seen.has(key(nodeId, e.id))) return { result: 'duplicate', id: e.id }
    const turn: OfflineTurn = {
      nodeId, id: e.id, at: e.at, transcript: e.transcript, reply: e.reply,
      ...(e.skill !== undefined ? { skill: e.skill } : {}),
      ...(e.action !== undefined ? { action: e.action } : {}),
      receivedAt: this.now(),
    }
    this.remember(turn)
    return { result: 'new', turn }
  }

  /** Queues turns for the next write + fsync (shared by requests within commitDelayMs); true once durable. */
  private commit(turns: OfflineTurn[]): Promise<boolean> {
    return new Promise((resolve) => {
      this.queued.push({ turns, done: resolve })
      this.flushTimer ??= setTimeout(() => { this.flushTimer = undefined; void this.flush() }, this.opts.commitDelayMs ?? 10)
    })
  }

  /** Resolves once everything handled so far is on disk (or has failed to be) and answered. */
  flush(): Promise<void> {
    if (this.flushTimer) { clearTimeout(this.flushTimer); this.flushTimer = undefined }
    this.flushing = this.flushing.then(() => this.doFlush())
    return this.flushing
  }

  private remember(t: OfflineTurn): void {
    const k = key(t.nodeId, t.id)
    if (this.seen.has(k)) return
    this.seen.add(k)
    this.turns.push(t)
    const max = this.opts.maxInMemory ?? 1000
    if (this.turns.length > max * 2) this.turns = this.turns.slice(-max)
  }

  private async doFlush(): Promise<void> {
    const commits = this.queued
    this.queued = []
    const turns = commits.flatMap((c) => c.turns)
    let ok = true
    if (turns.length) {
      try {
        if (!this.fh) throw new Error('offline-turn journal is not open')
        // Whole lines or nothing: a half line left by a full disk would swallow the next turn,
        // which the node has already trimmed once it was answered `kept`.
        await appendWhole(this.fh, turns.map((t) => JSON.stringify(t) + '\n').join(''))
      } catch (err) {
        // Not durable: forget them and answer with an error, so the node replays them later.
        ok = false
        const lost = new Set(turns.map((t) => key(t.nodeId, t.id)))
        for (const k of lost) this.seen.delete(k)
        this.turns = this.turns.filter((t) => !lost.has(key(t.nodeId, t.id)))
        this.opts.log.error({ err: (err as Error).message, count: turns.length }, 'offline-turn journal write failed; answering with an error')
      }
    }
    for (const c of commits) c.done(ok)
  }
}

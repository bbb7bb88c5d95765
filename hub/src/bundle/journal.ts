// Offline-turn journal ingest and the incident journal.
// Nodes answer from the offline bundle while the hub is gone and keep a journal; once back
// they replay it as nodeEvents {type:'offline_turn', id, at, transcript, reply, skill?, action?}.
// The hub keeps each turn once (dedup by node + id, persisted in
// <stateDir>/incidents/offline-turns.jsonl, fsync'd before the ack), publishes a late house
// action, and acknowledges with nodeEvents {type:'journal_ack', ids} — duplicates and
// malformed turns too, so the node can trim its journal either way.
// Node state changes go to <stateDir>/incidents/YYYY-MM-DD.jsonl (UTC day).
import { appendFile, mkdir, open, readFile, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { Counter, type Registry } from 'prom-client'
import { nodeEventSchemas, type Logger } from '@mirrormesh/broker'

// Declared once, in the contract: what a node replays.
const offlineTurnSchema = nodeEventSchemas.offline_turn

export interface OfflineTurn {
  nodeId: string
  id: string
  at: number
  transcript: string
  reply: string
  skill?: string
  action?: { component: string; action: string; room: string | null; state?: string }
  /** When the hub received it (ms). */
  receivedAt: number
}

export interface OfflineTurnIo {
  /** nodeEvents to the node: {type:'journal_ack', ids}. The hub adds v and ts. */
  ack(nodeId: string, ids: string[]): void
  /** actions/{component}: the house acts late rather than never. */
  act(component: string, action: { action: string; room: string | null; state?: string; nodeId: string; offline: true; at: number }): void
}

export interface OfflineTurnLogOptions {
  stateDir: string
  io: OfflineTurnIo
  log: Logger
  metrics?: Registry
  /** Turns kept in memory for GET /api/offline-turns (default 1000). */
  maxInMemory?: number
  /** Acks are batched per node over this window (default 20 ms). */
  ackDelayMs?: number
  now?: () => number
}

type Result = 'new' | 'duplicate' | 'invalid'

export class OfflineTurnLog {
  readonly dir: string
  readonly file: string
  private readonly seen = new Set<string>()
  private turns: OfflineTurn[] = []
  private fh: FileHandle | undefined
  /** New turns waiting to be written, and ids waiting for an ack, per node. */
  private pending: OfflineTurn[] = []
  private pendingAcks = new Map<string, string[]>()
  private flushTimer: NodeJS.Timeout | undefined
  private flushing: Promise<void> = Promise.resolve()
  private incidentChain: Promise<void> = Promise.resolve()
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
    await this.incidentChain
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

  /** A nodeEvents payload with type 'offline_turn' from `nodeId`. */
  handle(nodeId: string, event: unknown): Result {
    const res = offlineTurnSchema.safeParse(event)
    if (!res.success) {
      const id = (event as { id?: unknown } | null)?.id
      this.opts.log.warn({ nodeId, id, issue: res.error.issues[0]?.message }, 'offline turn rejected')
      this.counter?.inc({ result: 'invalid' })
      // Ack it anyway (when it has an id) so a malformed entry is not replayed forever.
      if (typeof id === 'string' && id.length > 0 && id.length <= 128) this.queueAck(nodeId, id)
      return 'invalid'
    }
    const e = res.data
    const key = `${nodeId}\u0000${e.id}`
    if (this.seen.has(key)) {
      this.counter?.inc({ result: 'duplicate' })
      this.queueAck(nodeId, e.id)
      return 'duplicate'
    }
    const turn: OfflineTurn = {
      nodeId, id: e.id, at: e.at, transcript: e.transcript, reply: e.reply,
      ...(e.skill !== undefined ? { skill: e.skill } : {}),
      ...(e.action !== undefined ? { action: e.action } : {}),
      receivedAt: this.now(),
    }
    this.remember(turn)
    this.pending.push(turn)
    this.counter?.inc({ result: 'new' })
    this.queueAck(nodeId, e.id)
    return 'new'
  }

  /** Registry 'state' listener: one incident line per node state change. */
  nodeState(view: { id: string; state: string; stateSince: number }, from: string | null): void {
    if (from === null || from === view.state) return
    this.incident({ type: 'node_state', nodeId: view.id, from, to: view.state, at: view.stateSince })
  }

  /** Append one line to today's incident file (UTC). */
  incident(entry: Record<string, unknown> & { type: string; at: number }): Promise<void> {
    const day = new Date(entry.at).toISOString().slice(0, 10)
    const line = JSON.stringify(entry) + '\n'
    this.incidentChain = this.incidentChain
      .then(() => mkdir(this.dir, { recursive: true }))
      .then(() => appendFile(join(this.dir, `${day}.jsonl`), line))
      .catch((err: Error) => this.opts.log.warn({ err: err.message }, 'incident journal write failed'))
    return this.incidentChain
  }

  /** Resolves once everything handled so far is on disk and acknowledged. */
  flush(): Promise<void> {
    if (this.flushTimer) { clearTimeout(this.flushTimer); this.flushTimer = undefined }
    this.flushing = this.flushing.then(() => this.doFlush())
    return this.flushing
  }

  private remember(t: OfflineTurn): void {
    const key = `${t.nodeId}\u0000${t.id}`
    if (this.seen.has(key)) return
    this.seen.add(key)
    this.turns.push(t)
    const max = this.opts.maxInMemory ?? 1000
    if (this.turns.length > max * 2) this.turns = this.turns.slice(-max)
  }

  private queueAck(nodeId: string, id: string): void {
    const ids = this.pendingAcks.get(nodeId) ?? []
    ids.push(id)
    this.pendingAcks.set(nodeId, ids)
    this.flushTimer ??= setTimeout(() => { this.flushTimer = undefined; void this.flush() }, this.opts.ackDelayMs ?? 20)
  }

  private async doFlush(): Promise<void> {
    const turns = this.pending
    const acks = this.pendingAcks
    this.pending = []
    this.pendingAcks = new Map()
    if (turns.length) {
      try {
        if (!this.fh) throw new Error('offline-turn journal is not open')
        await this.fh.appendFile(turns.map((t) => JSON.stringify(t) + '\n').join(''))
        await this.fh.sync()
      } catch (err) {
        // Not durable: forget them and send no ack, so the node replays them later.
        for (const t of turns) this.seen.delete(`${t.nodeId}\u0000${t.id}`)
        const lost = new Set(turns.map((t) => `${t.nodeId}\u0000${t.id}`))
        this.turns = this.turns.filter((t) => !lost.has(`${t.nodeId}\u0000${t.id}`))
        for (const [nodeId, ids] of acks) acks.set(nodeId, ids.filter((id) => !lost.has(`${nodeId}\u0000${id}`)))
        this.opts.log.error({ err: (err as Error).message, count: turns.length }, 'offline-turn journal write failed; not acknowledging them')
        turns.length = 0
      }
    }
    for (const t of turns) {
      if (t.action) this.opts.io.act(t.action.component, { action: t.action.action, room: t.action.room, ...(t.action.state !== undefined ? { state: t.action.state } : {}), nodeId: t.nodeId, offline: true, at: t.at })
    }
    // At most 200 ids an ack keeps the message far below the 64 KiB nodeEvents limit.
    for (const [nodeId, ids] of acks) {
      const unique = [...new Set(ids)]
      for (let i = 0; i < unique.length; i += 200) this.opts.io.ack(nodeId, unique.slice(i, i + 200))
    }
  }
}

// Replays the offline journal to the hub as request/response over MQTT (zigbee2mqtt bridge
// style, declared in broker/src/replay.ts):
//   → nodes/{id}/request/replay  {v, ts, transaction, turns:[{id, at, transcript, reply, skill?, action?}]}
//   ← nodes/{id}/response/replay {v, ts, transaction, status:'ok', data:{kept, duplicate, invalid}} | {…, status:'error', error}
// Oldest entries first, in batches bounded by count and by the request topic's maxBytes. The
// hub answers once the kept turns are on its disk; every id it answers (kept, duplicate or
// invalid) leaves the journal. No answer in time (or an error answer): the same batch is
// asked again under a new transaction after a jittered backoff, a few times; then the node
// goes online all the same and the rest is tried again in the background (5 s growing to
// 60 s) until the node goes offline. At least once: the hub dedupes by id. An answer is matched by
// transaction — any transaction issued for the batch in flight settles it (a late answer to
// an earlier attempt is as good as the latest); others (stale, foreign) are ignored.
import { randomUUID } from 'node:crypto'
import { Backoff, REPLAY_MAX_TURNS, topics, type BackoffOptions, type Logger, type OfflineTurnPayload, type ReplayRequest, type ReplayResponse } from '@mirrormesh/broker'
import type { RecoveryTask } from '../state.js'
import type { JournalEntry, OfflineJournal } from './journal.js'

export interface ReplayOptions {
  /** How long to wait for the hub's answer to one request (default 5 s). */
  timeoutMs?: number
  /** Requests per batch before the rest is left for the next recovery (default 3). */
  maxAttempts?: number
  /** Delay between attempts (default 500 ms growing to 5 s, jittered). */
  backoff?: BackoffOptions
  /**
   * After a recovery's replay gave up, keep trying in the background while that recovery's
   * signal holds (the node stays online; it is aborted when the node goes offline):
   * the delay between tries (default 5 s growing to 60 s, jittered); false: wait for the next recovery.
   */
  retryLater?: BackoffOptions | false
  /** Turns per request (default 50, at most the contract's 100). */
  maxTurns?: number
  /** Request size limit in bytes (default the contract's maxBytes for the request topic). */
  maxBytes?: number
  random?: () => number
}

/** A journal entry as the wire carries it. */
export function replayTurn(e: JournalEntry): OfflineTurnPayload {
  const t: OfflineTurnPayload = { id: e.id, at: e.at, transcript: e.transcript, reply: e.reply }
  if (e.skill) t.skill = e.skill
  if (e.action) t.action = e.action
  return t
}

type Outcome = { kind: 'answer'; res: ReplayResponse } | { kind: 'timeout' } | { kind: 'aborted' }

export class JournalReplayer {
  private readonly timeoutMs: number
  private readonly maxAttempts: number
  private readonly maxTurns: number
  private readonly maxBytes: number
  private readonly backoff: Backoff
  /** Process-unique prefix: answers to a previous run of the agent are foreign. */
  private readonly prefix = randomUUID().slice(0, 8)
  private seq = 0
  /** Transactions of the batch in flight, and who waits for their answer. */
  private live = new Set<string>()
  private waiter: ((res: ReplayResponse) => void) | undefined
  /** An answer for the batch that came while no request waited (during the backoff). */
  private early: ReplayResponse | undefined
  private running: Promise<void> | undefined
  private readonly later: Backoff | undefined

  constructor(
    private readonly journal: OfflineJournal,
    private readonly publish: (req: ReplayRequest) => Promise<void>,
    private readonly log: Logger,
    opts: ReplayOptions = {},
  ) {
    this.timeoutMs = opts.timeoutMs ?? 5000
    this.maxAttempts = Math.max(1, opts.maxAttempts ?? 3)
    this.maxTurns = Math.min(REPLAY_MAX_TURNS, Math.max(1, opts.maxTurns ?? 50))
    this.maxBytes = opts.maxBytes ?? topics.nodeReplayRequest.maxBytes
    this.backoff = new Backoff(opts.backoff ?? { initialMs: 500, maxMs: 5000, minMs: 100 }, opts.random)
    if (opts.retryLater !== false) this.later = new Backoff(opts.retryLater ?? { initialMs: 5000, maxMs: 60_000, minMs: 1000 }, opts.random)
  }

  /** An answer on nodes/{id}/response/replay. */
  onResponse(res: ReplayResponse): void {
    if (!this.live.has(res.transaction)) {
      this.log.debug({ transaction: res.transaction }, 'replay answer for no request in flight ignored')
      return
    }
    if (this.waiter) {
      const w = this.waiter
      this.waiter = undefined
      w(res)
    } else this.early = res
  }

  /**
   * The RecoveryTask: replays every pending entry, ends when done, given up, or aborted. Never
   * throws. What is left is tried again in the background (retryLater) until `signal` aborts:
   * NodeStateMachine aborts a recovery's signal only when the node goes offline again.
   */
  task: RecoveryTask = (signal) => {
    // One replay at a time: a recovery that starts while the last one winds down waits for it.
    const run = (this.running ?? Promise.resolve()).then(() => this.run(signal))
    this.running = run.finally(() => { if (this.running === run) this.running = undefined })
    return run.then(() => this.scheduleLater(signal))
  }

  private scheduleLater(signal: AbortSignal): void {
    if (!this.later || signal.aborted) return
    if (this.journal.size === 0) { this.later.reset(); return }
    const ms = this.later.next()
    this.log.info({ left: this.journal.size, inMs: ms }, 'offline journal replay: trying again in the background')
    void sleep(ms, signal).then((ok) => { if (ok) void this.task(signal) })
  }

  private async run(signal: AbortSignal): Promise<void> {
    if (this.journal.size === 0) return
    const t0 = performance.now()
    let answered = 0
    let requests = 0
    let gaveUp = false
    while (!signal.aborted) {
      const batch = await this.nextBatch()
      if (!batch) break
      const ids = new Set(batch.turns.map((t) => t.id))
      this.live = new Set()
      this.backoff.reset()
      let settled = false
      for (let attempt = 1; attempt <= this.maxAttempts && !signal.aborted; attempt++) {
        if (attempt > 1 && !(await sleep(this.backoff.next(), signal))) break
        // A late answer to an earlier attempt that came during the backoff: no need to ask again.
        const early = this.early
        this.early = undefined
        let outcome: Outcome
        if (early) outcome = { kind: 'answer', res: early }
        else {
          const transaction = `${this.prefix}-${++this.seq}`
          this.live.add(transaction)
          requests++
          outcome = await this.ask({ v: 1, ts: Date.now(), transaction, turns: batch.turns }, signal)
        }
        if (outcome.kind === 'aborted') break
        if (outcome.kind === 'timeout') {
          this.log.warn({ transaction: `${this.prefix}-${this.seq}`, turns: batch.turns.length, attempt, timeoutMs: this.timeoutMs }, 'offline journal replay: no answer from the hub in time')
          continue
        }
        const res = outcome.res
        if (res.status === 'error') {
          this.log.warn({ transaction: res.transaction, attempt, error: res.error }, 'offline journal replay: the hub answered with an error')
          continue
        }
        const { kept, duplicate, invalid } = res.data
        for (const i of invalid) this.log.warn({ id: i.id, error: i.error }, 'offline turn refused by the hub as malformed; dropped from the journal')
        const done = [...kept, ...duplicate, ...invalid.map((i) => i.id)].filter((id) => ids.has(id))
        if (done.length === 0) {
          this.log.warn({ transaction: res.transaction, attempt }, 'offline journal replay: the hub answered none of the batch')
          continue
        }
        answered += await this.journal.ack(done)
        settled = true
        break
      }
      this.live = new Set()
      this.waiter = undefined
      this.early = undefined
      if (!settled) { gaveUp = !signal.aborted; break }
    }
    const left = this.journal.size
    const ms = Math.round(performance.now() - t0)
    if (left > 0) this.log.warn({ answered, left, requests, ms, gaveUp }, 'offline turns replayed partly; the rest later')
    else this.log.info({ answered, requests, ms }, 'offline turns replayed')
  }

  /** Publishes a request and waits for its answer (the waiter is set before the publish). */
  private async ask(req: ReplayRequest, signal: AbortSignal): Promise<Outcome> {
    if (signal.aborted) return { kind: 'aborted' }
    let timer: NodeJS.Timeout | undefined
    let onAbort: (() => void) | undefined
    const outcome = new Promise<Outcome>((resolve) => {
      this.waiter = (res) => resolve({ kind: 'answer', res })
      timer = setTimeout(() => { this.waiter = undefined; resolve({ kind: 'timeout' }) }, this.timeoutMs)
      onAbort = () => { this.waiter = undefined; resolve({ kind: 'aborted' }) }
      signal.addEventListener('abort', onAbort, { once: true })
    })
    try {
      await this.publish(req).catch((err: unknown) => {
        this.log.warn({ err: (err as Error)?.message, transaction: req.transaction }, 'offline journal replay: publish failed')
      })
      return await outcome
    } finally {
      clearTimeout(timer)
      if (onAbort) signal.removeEventListener('abort', onAbort)
    }
  }

  /**
   * The oldest pending entries that fit one request (count and bytes). An entry that cannot
   * fit even alone (only a damaged journal holds one) is dropped here, loudly: it could never
   * be sent, and would block every entry behind it.
   */
  private async nextBatch(): Promise<{ turns: OfflineTurnPayload[] } | undefined> {
    const envelope = Buffer.byteLength(JSON.stringify({ v: 1, ts: Date.now(), transaction: `${this.prefix}-${this.seq + 1}`.padEnd(64, 'x'), turns: [] }))
    const turns: OfflineTurnPayload[] = []
    let bytes = envelope
    for (const e of this.journal.pending()) {
      if (turns.length >= this.maxTurns) break
      const t = replayTurn(e)
      const b = Buffer.byteLength(JSON.stringify(t)) + 1
      if (bytes + b > this.maxBytes) {
        if (turns.length > 0) break
        this.log.error({ id: e.id, bytes: b, maxBytes: this.maxBytes }, 'offline journal entry too large to replay; dropped')
        await this.journal.ack([e.id])
        continue
      }
      turns.push(t)
      bytes += b
    }
    return turns.length ? { turns } : undefined
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(false)
    const t = setTimeout(() => { signal.removeEventListener('abort', onAbort); resolve(true) }, ms)
    const onAbort = (): void => { clearTimeout(t); resolve(false) }
    signal.addEventListener('abort', onAbort, { once: true })
  })
}

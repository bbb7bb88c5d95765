import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { createLogger, decode, encode, type ReplayRequest, type ReplayResponse, type ReplayResult } from '@mirrormesh/broker'
import { NodeStateMachine } from '../state.js'
import { OfflineJournal } from './journal.js'
import { JournalReplayer, type ReplayOptions } from './replay.js'

const log = createLogger({ name: 'test', level: 'silent' })
const root = mkdtempSync(path.join(tmpdir(), 'mm-replay-'))
afterAll(() => rmSync(root, { recursive: true, force: true }))
let n = 0
const turn = (i: number) => ({ transcript: `what time is it ${i}`, reply: `It's ${i}`, skill: 'clock' })
const fast: ReplayOptions = { timeoutMs: 300, backoff: { initialMs: 20, maxMs: 40, minMs: 10 }, retryLater: false }

async function journal(count: number): Promise<OfflineJournal> {
  const j = await OfflineJournal.open(path.join(root, `j${n++}`))
  for (let i = 0; i < count; i++) await j.append(turn(i))
  return j
}

const ok = (req: ReplayRequest, data: Partial<ReplayResult>): ReplayResponse =>
  ({ v: 1, ts: Date.now(), transaction: req.transaction, status: 'ok', data: { kept: [], duplicate: [], invalid: [], ...data } })
const keepAll = (req: ReplayRequest): ReplayResponse => ok(req, { kept: req.turns.map((t) => (t as { id: string }).id) })

/** A replayer whose requests go to `hub`; its answer (if any) comes back over the wire format. */
function setup(j: OfflineJournal, hub: (req: ReplayRequest, i: number) => ReplayResponse | undefined | Promise<ReplayResponse | undefined>, opts: ReplayOptions = fast) {
  const requests: ReplayRequest[] = []
  const r: JournalReplayer = new JournalReplayer(j, async (req) => {
    // What the node publishes is what the contract accepts on the request topic.
    const wire = decode('mm', 'mm/nodes/kitchen/request/replay', encode('nodeReplayRequest', req))
    expect(wire.ok).toBe(true)
    const i = requests.push(req) - 1
    void Promise.resolve(hub(req, i)).then((res) => { if (res) setTimeout(() => r.onResponse(res), 1) })
  }, log, opts)
  return { r, requests }
}

describe('JournalReplayer', () => {
  it('replays the journal as requests with a transaction and trims what the hub kept', async () => {
    const j = await journal(3)
    const { r, requests } = setup(j, keepAll)
    await r.task(new AbortController().signal)
    expect(requests).toHaveLength(1)
    expect(requests[0]).toEqual({ v: 1, ts: expect.any(Number), transaction: expect.any(String), turns: expect.any(Array) })
    expect(requests[0]!.turns[0]).toEqual({ id: expect.any(String), at: expect.any(Number), transcript: 'what time is it 0', reply: "It's 0", skill: 'clock' })
    expect(requests[0]!.turns.map((t) => (t as { transcript: string }).transcript)).toEqual(['what time is it 0', 'what time is it 1', 'what time is it 2'])
    expect(j.pending()).toEqual([])
  })

  it('trims duplicates and invalid turns too: a malformed entry is never replayed again', async () => {
    const j = await journal(3)
    const [a, b, c] = j.pending().map((e) => e.id)
    const { r } = setup(j, (req) => ok(req, { kept: [a!], duplicate: [b!], invalid: [{ id: c!, error: 'at: expected number' }] }))
    await r.task(new AbortController().signal)
    expect(j.pending()).toEqual([])
  })

  it('batches by count and by the request size limit', async () => {
    const j = await journal(7)
    const byCount = setup(j, keepAll, { ...fast, maxTurns: 3 })
    await byCount.r.task(new AbortController().signal)
    expect(byCount.requests.map((q) => q.turns.length)).toEqual([3, 3, 1])
    expect(j.size).toBe(0)

    const big = await OfflineJournal.open(path.join(root, `j${n++}`))
    for (let i = 0; i < 6; i++) await big.append({ transcript: 'x'.repeat(900), reply: 'y'.repeat(900) })
    const bySize = setup(big, keepAll, { ...fast, maxBytes: 4096 })
    await bySize.r.task(new AbortController().signal)
    expect(bySize.requests.map((q) => q.turns.length)).toEqual([2, 2, 2])
    for (const q of bySize.requests) expect(Buffer.byteLength(JSON.stringify(q))).toBeLessThanOrEqual(4096)
    expect(big.size).toBe(0)
  })

  it('drops an entry too large to ever be sent instead of blocking the rest behind it', async () => {
    const j = await OfflineJournal.open(path.join(root, `j${n++}`))
    await j.append({ transcript: 'x'.repeat(1000), reply: 'y'.repeat(1000) })
    await j.append(turn(1))
    const { r, requests } = setup(j, keepAll, { ...fast, maxBytes: 1024 })
    await r.task(new AbortController().signal)
    expect(requests.flatMap((q) => q.turns.map((t) => (t as { transcript: string }).transcript))).toEqual(['what time is it 1'])
    expect(j.size).toBe(0)
  })

  it('retries with backoff and a new transaction when the hub does not answer in time', async () => {
    const j = await journal(2)
    const at: number[] = []
    const { r, requests } = setup(j, (req, i) => { at.push(performance.now()); return i === 0 ? undefined : keepAll(req) })
    await r.task(new AbortController().signal)
    expect(requests).toHaveLength(2)
    expect(requests[1]!.transaction).not.toBe(requests[0]!.transaction)
    expect(requests[1]!.turns).toEqual(requests[0]!.turns) // the same batch again
    expect(at[1]! - at[0]!).toBeGreaterThanOrEqual(300) // the timeout, then the backoff
    expect(j.size).toBe(0)
  })

  it('ignores answers to foreign or stale transactions', async () => {
    const j = await journal(2)
    const ids = j.pending().map((e) => e.id)
    const { r, requests } = setup(j, (req, i) => (i === 0 ? { ...keepAll(req), transaction: 'someone-else-1' } : ok(req, { kept: [ids[0]!] })), { ...fast, maxAttempts: 2 })
    await r.task(new AbortController().signal)
    // Foreign answer ignored → timeout → retry answered for the first turn → next batch [ids[1]],
    // whose answers name none of it (twice) → left for the next recovery.
    expect(requests.map((q) => q.turns.length)).toEqual([2, 2, 1, 1])
    expect(j.pending().map((e) => e.id)).toEqual([ids[1]])
    // An answer arriving when nothing is in flight changes nothing.
    r.onResponse(keepAll(requests[0]!))
    await new Promise((res) => setTimeout(res, 20))
    expect(j.pending().map((e) => e.id)).toEqual([ids[1]])
  })

  it('a late answer to an earlier attempt of the same batch settles it', async () => {
    const j = await journal(1)
    let retried!: () => void
    const retry = new Promise<void>((res) => { retried = res })
    const { r, requests } = setup(j, async (req, i) => {
      if (i === 0) { await retry; return keepAll(req) } // answers the first request only once the retry is out
      retried()
      return undefined // the retry itself is never answered
    }, { timeoutMs: 100, maxAttempts: 2, backoff: { initialMs: 10, maxMs: 10, minMs: 10 }, retryLater: false })
    await r.task(new AbortController().signal)
    expect(requests).toHaveLength(2)
    expect(j.size).toBe(0)
  })

  it('a late answer arriving during the backoff settles the batch without asking again', async () => {
    const j = await journal(1)
    const { r, requests } = setup(j, async (req) => { await new Promise((res) => setTimeout(res, 100)); return keepAll(req) },
      { timeoutMs: 50, maxAttempts: 2, backoff: { initialMs: 200, maxMs: 200, minMs: 200 }, retryLater: false })
    await r.task(new AbortController().signal)
    expect(requests).toHaveLength(1)
    expect(j.size).toBe(0)
  })

  it('retries after an error answer, and gives up after maxAttempts leaving the journal for the next recovery', async () => {
    const j = await journal(2)
    const err = (req: ReplayRequest): ReplayResponse => ({ v: 1, ts: Date.now(), transaction: req.transaction, status: 'error', error: 'disk full' })
    const failing = setup(j, err, { ...fast, maxAttempts: 3 })
    await failing.r.task(new AbortController().signal)
    expect(failing.requests).toHaveLength(3)
    expect(j.size).toBe(2)
    const next = setup(j, keepAll)
    await next.r.task(new AbortController().signal)
    expect(j.size).toBe(0)
  })

  it('after giving up, keeps trying in the background until the recovery signal aborts', async () => {
    const j = await journal(2)
    let failing = true
    const err = (req: ReplayRequest): ReplayResponse => ({ v: 1, ts: Date.now(), transaction: req.transaction, status: 'error', error: 'disk full' })
    const ac = new AbortController()
    const { r, requests } = setup(j, (req) => (failing ? err(req) : keepAll(req)), { ...fast, maxAttempts: 2, retryLater: { initialMs: 50, maxMs: 50, minMs: 50 } })
    await r.task(ac.signal)
    expect(j.size).toBe(2) // the recovery task itself gave up (the node goes online all the same)
    await expect.poll(() => requests.length).toBeGreaterThanOrEqual(4) // background tries
    failing = false
    await expect.poll(() => j.size).toBe(0)
    const sent = requests.length
    await new Promise((res) => setTimeout(res, 150))
    expect(requests.length).toBe(sent) // nothing left: no more tries

    // Going offline (the signal aborts) stops the background tries.
    const j2 = await journal(1)
    const ac2 = new AbortController()
    const quiet = setup(j2, err, { ...fast, maxAttempts: 1, retryLater: { initialMs: 50, maxMs: 50, minMs: 50 } })
    await quiet.r.task(ac2.signal)
    ac2.abort()
    const n = quiet.requests.length
    await new Promise((res) => setTimeout(res, 200))
    expect(quiet.requests.length).toBe(n)
    ac.abort()
  })

  it('ignores ids the hub answers that were not in the batch', async () => {
    const j = await journal(1)
    const { r } = setup(j, (req) => ok(req, { kept: ['not-mine', (req.turns[0] as { id: string }).id] }))
    await r.task(new AbortController().signal)
    expect(j.size).toBe(0)
  })

  it('ends quickly when recovery is aborted, keeping the journal', async () => {
    const j = await journal(3)
    const ac = new AbortController()
    const { r, requests } = setup(j, () => undefined, { ...fast, timeoutMs: 10_000 })
    const p = r.task(ac.signal)
    await new Promise((res) => setTimeout(res, 30))
    const t0 = performance.now()
    ac.abort()
    await p
    expect(performance.now() - t0).toBeLessThan(1000) // not the 10 s timeout
    expect(requests).toHaveLength(1)
    expect(j.size).toBe(3)
  })

  it('runs as a NodeStateMachine recovery task before online', async () => {
    const j = await journal(2)
    const { r } = setup(j, keepAll)
    const sm = new NodeStateMachine(60_000)
    const states: string[] = []
    sm.on('state', (c) => states.push(`${c.to}:${j.size}`))
    sm.addRecoveryTask(r.task)
    sm.onBrokerConnected()
    sm.onHubStatus('online')
    sm.onHubHeartbeat()
    await expect.poll(() => sm.state).toBe('online')
    expect(states).toEqual(['recovering:2', 'online:0'])
    sm.stop()
  })
})

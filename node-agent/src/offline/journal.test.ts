import { mkdtempSync, rmSync } from 'node:fs'
import fs from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { createLogger } from '@mirrormesh/broker'
import { NodeStateMachine } from '../state.js'
import { AckWaiter, FallbackLog, journalReplayTask, OfflineJournal, type OfflineTurnEvent } from './journal.js'

const log = createLogger({ name: 'test', level: 'silent' })
const root = mkdtempSync(path.join(tmpdir(), 'mm-journal-'))
afterAll(() => rmSync(root, { recursive: true, force: true }))
let n = 0
const freshDir = () => path.join(root, `j${n++}`)
const turn = (i: number) => ({ transcript: `what time is it ${i}`, reply: `It's ${i}`, skill: 'clock' })

describe('OfflineJournal', () => {
  it('appends durable JSON lines and re-reads them after a restart', async () => {
    const dir = freshDir()
    const j = await OfflineJournal.open(dir, { maxEntries: 10 })
    const a = await j.append({ ...turn(1), action: { component: 'light', action: 'set', room: 'kitchen', state: 'on' } })
    const b = await j.append(turn(2))
    expect(a.id).not.toBe(b.id)
    expect(a).toMatchObject({ transcript: 'what time is it 1', skill: 'clock', action: { room: 'kitchen' } })
    expect(b.action).toBeUndefined()
    expect(b.at).toBe(b.ts)
    const lines = (await fs.readFile(j.file, 'utf8')).split('\n')
    expect(lines).toHaveLength(3)
    expect(JSON.parse(lines[0]!)).toEqual(a)
    const again = await OfflineJournal.open(dir, { maxEntries: 10 })
    expect(again.pending()).toEqual([a, b])
  })

  it('drops a torn last line and repairs the file so later appends are readable', async () => {
    const dir = freshDir()
    const j = await OfflineJournal.open(dir)
    const a = await j.append(turn(1))
    await fs.appendFile(j.file, '{"id":"x","ts":1,"at":17') // power cut mid-write
    const j2 = await OfflineJournal.open(dir)
    expect(j2.pending()).toEqual([a])
    const c = await j2.append(turn(3))
    expect((await OfflineJournal.open(dir)).pending()).toEqual([a, c])
  })

  it('keeps the newest maxEntries', async () => {
    const dir = freshDir()
    const j = await OfflineJournal.open(dir, { maxEntries: 3 })
    const all = []
    for (let i = 0; i < 5; i++) all.push(await j.append(turn(i)))
    expect(j.pending()).toEqual(all.slice(2))
    expect((await OfflineJournal.open(dir, { maxEntries: 3 })).pending()).toEqual(all.slice(2))
    // No temp files left behind.
    expect(await fs.readdir(dir)).toEqual(['offline-journal.jsonl'])
  })

  it('keeps within maxBytes', async () => {
    const j = await OfflineJournal.open(freshDir(), { maxEntries: 1000, maxBytes: 2048 })
    for (let i = 0; i < 40; i++) await j.append(turn(i))
    const st = await fs.stat(j.file)
    expect(st.size).toBeLessThanOrEqual(2048)
    expect(j.pending().at(-1)?.transcript).toBe('what time is it 39')
    expect(j.size).toBeGreaterThan(3)
  })

  it('ack removes exactly the acknowledged entries, atomically and durably', async () => {
    const dir = freshDir()
    const j = await OfflineJournal.open(dir)
    const es = await Promise.all([1, 2, 3, 4].map((i) => j.append(turn(i))))
    expect(j.pending().map((e) => e.transcript)).toEqual(['what time is it 1', 'what time is it 2', 'what time is it 3', 'what time is it 4'])
    expect(await j.ack([es[0]!.id, es[2]!.id, 'unknown'])).toBe(2)
    expect(j.pending()).toEqual([es[1], es[3]])
    expect((await OfflineJournal.open(dir)).pending()).toEqual([es[1], es[3]])
  })
})

describe('journalReplayTask', () => {
  async function setup(count: number) {
    const j = await OfflineJournal.open(freshDir())
    for (let i = 0; i < count; i++) await j.append(turn(i))
    return j
  }

  it('publishes offline_turn events and trims what the hub acknowledged', async () => {
    const j = await setup(3)
    const acks = new AckWaiter()
    const sent: OfflineTurnEvent[] = []
    const task = journalReplayTask(j, async (e) => {
      sent.push(e)
      queueMicrotask(() => acks.onAck([e.id])) // the hub acks each one
    }, acks.wait, log)
    await task(new AbortController().signal)
    expect(sent.map((e) => e.transcript)).toEqual(['what time is it 0', 'what time is it 1', 'what time is it 2'])
    expect(sent[0]).toEqual({ v: 1, type: 'offline_turn', id: expect.any(String), transcript: 'what time is it 0', reply: "It's 0", skill: 'clock', at: expect.any(Number), ts: expect.any(Number) })
    expect(j.pending()).toEqual([])
  })

  it('leaves unacknowledged entries for next time (ack timeout)', async () => {
    const j = await setup(3)
    const acks = new AckWaiter()
    const ids = j.pending().map((e) => e.id)
    const task = journalReplayTask(j, async (e) => {
      if (e.id !== ids[1]) acks.onAck([e.id]) // the hub lost the second one
    }, acks.wait, log, { ackTimeoutMs: 200 })
    const t0 = performance.now()
    await task(new AbortController().signal)
    expect(performance.now() - t0).toBeGreaterThanOrEqual(150)
    expect(j.pending().map((e) => e.id)).toEqual([ids[1]])
    // Next recovery: replayed again (at least once) and acked.
    const again: string[] = []
    await journalReplayTask(j, async (e) => { again.push(e.id); acks.onAck([e.id]) }, acks.wait, log)(new AbortController().signal)
    expect(again).toEqual([ids[1]])
    expect(j.pending()).toEqual([])
  })

  it('stops at a failed publish and keeps the rest', async () => {
    const j = await setup(4)
    const acks = new AckWaiter()
    let n = 0
    await journalReplayTask(j, async (e) => {
      if (++n === 3) throw new Error('broker gone')
      acks.onAck([e.id])
    }, acks.wait, log, { ackTimeoutMs: 100 })(new AbortController().signal)
    expect(j.pending().map((e) => e.transcript)).toEqual(['what time is it 2', 'what time is it 3'])
  })

  it('works in batches and ends quickly when recovery is aborted', async () => {
    const j = await setup(5)
    const acks = new AckWaiter()
    const ac = new AbortController()
    const sent: string[] = []
    const p = journalReplayTask(j, async (e) => { sent.push(e.id) }, acks.wait, log, { batchSize: 2, ackTimeoutMs: 10_000 })(ac.signal)
    await new Promise((r) => setTimeout(r, 50))
    acks.onAck([sent[0]!])
    ac.abort()
    await p
    expect(sent).toHaveLength(2)
    expect(j.size).toBe(4)
  })

  it('runs as a NodeStateMachine recovery task before online', async () => {
    const j = await setup(2)
    const acks = new AckWaiter()
    const sm = new NodeStateMachine(60_000)
    const states: string[] = []
    sm.on('state', (c) => states.push(`${c.to}:${j.size}`))
    sm.addRecoveryTask(journalReplayTask(j, async (e) => { setTimeout(() => acks.onAck([e.id]), 5) }, acks.wait, log))
    sm.onBrokerConnected()
    sm.onHubStatus('online')
    sm.onHubHeartbeat()
    await expect.poll(() => sm.state).toBe('online')
    expect(states).toEqual(['recovering:2', 'online:0'])
    sm.stop()
  })
})

describe('FallbackLog', () => {
  it('writes one readable line per turn and rotates by size keeping two files', async () => {
    const dir = freshDir()
    const fl = new FallbackLog(dir, 300)
    await fl.write('offline', 'what time is it', "It's 9:07 PM", new Date('2026-11-25T21:07:00Z'))
    expect(await fs.readFile(fl.file, 'utf8')).toBe('2026-11-25T21:07:00.000Z offline heard="what time is it" replied="It\'s 9:07 PM"\n')
    await fl.write('offline', 'say "hi"\nplease', '')
    expect((await fs.readFile(fl.file, 'utf8')).split('\n')[1]).toMatch(/ offline heard="say \\"hi\\"\\nplease" replied=""$/)
    for (let i = 0; i < 20; i++) await fl.write('offline', `turn ${i}`, 'ok')
    expect((await fs.readdir(dir)).sort()).toEqual(['fallback.log', 'fallback.log.1'])
    expect((await fs.stat(fl.file)).size).toBeLessThanOrEqual(300)
    expect(await fs.readFile(fl.file, 'utf8')).toContain('heard="turn 19"')
    // A new FallbackLog (restart) continues the same file.
    const again = new FallbackLog(dir, 300)
    await again.write('recovering', 'x', 'y')
    expect(await fs.readFile(fl.file, 'utf8')).toMatch(/recovering heard="x" replied="y"\n$/)
  })
})

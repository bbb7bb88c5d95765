import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Registry } from 'prom-client'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createLogger, decode, encode, type ReplayResponse } from '@mirrormesh/broker'
import { buildApp } from '../app.js'
import { NodeRegistry } from '../registry.js'
import { OfflineTurnLog, type OfflineTurnIo } from './journal.js'

const log = createLogger({ name: 'test', level: 'silent' })
let stateDir: string
let answers: { nodeId: string; res: ReplayResponse }[]
let actions: { component: string; action: Record<string, unknown> }[]
let metrics: Registry
const io: OfflineTurnIo = {
  respond: (nodeId, res) => {
    // What the hub answers is what the contract lets a node read.
    expect(decode('mm', `mm/nodes/${nodeId}/response/replay`, encode('nodeReplayResponse', res)).ok).toBe(true)
    answers.push({ nodeId, res })
  },
  act: (component, action) => actions.push({ component, action }),
}
const open: OfflineTurnLog[] = []

async function newLog(): Promise<OfflineTurnLog> {
  metrics = new Registry()
  const l = new OfflineTurnLog({ stateDir, io, log, metrics })
  await l.start()
  open.push(l)
  return l
}

const turn = (id: string, extra: Record<string, unknown> = {}) => ({
  id, at: 1_700_000_000_000 + Number(id.replace(/\D/g, '') || 0),
  transcript: 'are you there', reply: "Yes, I'm here.", skill: 'presence', ...extra,
})

async function total(result: string): Promise<number> {
  const m = await metrics.getSingleMetric('mirrormesh_offline_turns_total')!.get()
  return m.values.find((v) => v.labels.result === result)?.value ?? 0
}

beforeEach(async () => {
  stateDir = await mkdtemp(join(tmpdir(), 'mm-journal-'))
  answers = []
  actions = []
})
afterEach(async () => {
  for (const l of open.splice(0)) await l.close()
  await rm(stateDir, { recursive: true, force: true })
})

let tx = 0
const req = (...turns: unknown[]) => ({ v: 1 as const, ts: Date.now(), transaction: `t-${++tx}`, turns })
const data = (kept: string[] = [], duplicate: string[] = [], invalid: { id: string; error: string }[] = []) => ({ kept, duplicate, invalid })

describe('OfflineTurnLog', () => {
  it('keeps each turn once, answers by transaction with kept and duplicate ids, records late house actions without executing them', async () => {
    const l = await newLog()
    const light = { component: 'light', action: 'set', room: 'kitchen', state: 'on' }
    const first = req(turn('t1'), turn('t2', { skill: 'light', transcript: 'turn on the kitchen light', reply: 'Turning on the kitchen light.', action: light }), turn('t1'))
    const res = await l.handle('mirror-1', first)
    expect(res).toEqual({ v: 1, ts: expect.any(Number), transaction: first.transaction, status: 'ok', data: data(['t1', 't2'], ['t1']) })
    // Same id from another node is another turn.
    const other = req(turn('t1'))
    expect((await l.handle('mirror-2', other))).toMatchObject({ transaction: other.transaction, status: 'ok', data: data(['t1']) })
    expect(answers.map((a) => [a.nodeId, a.res.transaction])).toEqual([['mirror-1', first.transaction], ['mirror-2', other.transaction]])
    // A light asked for while the hub was unreachable never switches late (issue #12): recorded only.
    expect(actions).toEqual([])
    expect(l.list().map((t) => `${t.nodeId}/${t.id}`)).toEqual(['mirror-2/t1', 'mirror-1/t2', 'mirror-1/t1'])
    expect(await total('new')).toBe(3)
    expect(await total('duplicate')).toBe(1)
    const lines = (await readFile(join(stateDir, 'incidents', 'offline-turns.jsonl'), 'utf8')).trim().split('\n')
    expect(lines).toHaveLength(3)
    expect(JSON.parse(lines[1]!)).toMatchObject({ nodeId: 'mirror-1', id: 't2', action: light })
  })

  it('answers only once the kept turns are fsync\'d', async () => {
    const l = await newLog()
    const fh = (l as unknown as { fh: { datasync(): Promise<void> } }).fh
    const sync = fh.datasync.bind(fh)
    let answeredBeforeSync: number | undefined
    fh.datasync = async () => {
      await new Promise((r) => setTimeout(r, 50))
      answeredBeforeSync = answers.length
      await sync()
    }
    await l.handle('mirror-1', req(turn('t1')))
    expect(answeredBeforeSync).toBe(0)
    expect(answers).toHaveLength(1)
    expect(await readFile(l.file, 'utf8')).toContain('"id":"t1"')
  })

  it('answers with an error (and keeps nothing) when the turns cannot be written; a retry is kept', async () => {
    const l = await newLog()
    await (l as unknown as { fh: { close(): Promise<void> } }).fh.close() // every write now fails
    const res = await l.handle('mirror-1', req(turn('t1')))
    expect(res).toMatchObject({ status: 'error', error: expect.stringMatching(/write failed/) })
    expect(l.list()).toEqual([])
    await l.start() // the file is reopened
    expect((await l.handle('mirror-1', req(turn('t1'))))).toMatchObject({ status: 'ok', data: data(['t1']) })
  })

  it('a retry racing the first request is answered duplicate only after the first is on disk', async () => {
    const l = await newLog()
    const [a, b] = await Promise.all([l.handle('mirror-1', req(turn('t1'))), l.handle('mirror-1', req(turn('t1')))])
    expect(a).toMatchObject({ status: 'ok', data: data(['t1']) })
    expect(b).toMatchObject({ status: 'ok', data: data([], ['t1']) })
    expect((await readFile(l.file, 'utf8')).trim().split('\n')).toHaveLength(1)
  })

  it('dedups across a restart and still answers the replay', async () => {
    const a = await newLog()
    await a.handle('mirror-1', req(turn('t1'), turn('t2')))
    await a.close()
    open.splice(0)
    answers = []

    const b = await newLog()
    expect(b.list()).toHaveLength(2)
    const res = await b.handle('mirror-1', req(turn('t1'), turn('t2'), turn('t3')))
    expect(res).toMatchObject({ status: 'ok', data: data(['t3'], ['t1', 't2']) })
    expect(actions).toEqual([])
    const lines = (await readFile(join(stateDir, 'incidents', 'offline-turns.jsonl'), 'utf8')).trim().split('\n')
    expect(lines.map((x) => JSON.parse(x).id)).toEqual(['t1', 't2', 't3'])
  })

  it('checks each turn on its own: malformed ones are answered invalid by id, the rest of the batch is kept', async () => {
    const l = await newLog()
    const res = await l.handle('mirror-1', req(
      { id: 'bad', at: 'yesterday' },
      { transcript: 'no id' },
      'not even an object',
      turn('t1', { action: { component: '../x', action: 'set', room: null } }),
      turn('t2'),
    ))
    expect(res.status).toBe('ok')
    if (res.status !== 'ok') return
    expect(res.data.kept).toEqual(['t2'])
    expect(res.data.invalid.map((i) => i.id)).toEqual(['bad', 't1'])
    expect(res.data.invalid[0]!.error).toMatch(/^at: /)
    expect(res.data.invalid[1]!.error).toMatch(/^action\.component: /)
    expect(l.list().map((t) => t.id)).toEqual(['t2'])
    expect(await total('invalid')).toBe(4)
    expect(await total('new')).toBe(1)
  })

  it('GET /api/offline-turns lists newest first', async () => {
    const l = await newLog()
    await l.handle('mirror-1', req(turn('t1')))
    await l.handle('mirror-1', req(turn('t2')))
    const registry = new NodeRegistry({ staleMs: 3000, metrics, log })
    const app = buildApp({ registry, metrics, readiness: () => ({ ready: true, checks: {} }), uptimeS: () => 1, drain: () => undefined, offlineTurns: l })
    const res = await app.inject({ method: 'GET', url: '/api/offline-turns' })
    expect(res.statusCode).toBe(200)
    expect(res.json().turns.map((t: { id: string }) => t.id)).toEqual(['t2', 't1'])
    const one = await app.inject({ method: 'GET', url: '/api/offline-turns?limit=1' })
    expect(one.json().turns).toHaveLength(1)
    await app.close()
  })
})

import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Registry } from 'prom-client'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createLogger } from '@mirrormesh/broker'
import { buildApp } from '../app.js'
import { NodeRegistry } from '../registry.js'
import { OfflineTurnLog, type OfflineTurnIo } from './journal.js'

const log = createLogger({ name: 'test', level: 'silent' })
let stateDir: string
let acks: { nodeId: string; ids: string[] }[]
let actions: { component: string; action: Record<string, unknown> }[]
let metrics: Registry
const io: OfflineTurnIo = {
  ack: (nodeId, ids) => acks.push({ nodeId, ids }),
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
  v: 1, ts: Date.now(), type: 'offline_turn', id, at: 1_700_000_000_000 + Number(id.replace(/\D/g, '') || 0),
  transcript: 'are you there', reply: "Yes, I'm here.", skill: 'presence', ...extra,
})

async function total(result: string): Promise<number> {
  const m = await metrics.getSingleMetric('mirrormesh_offline_turns_total')!.get()
  return m.values.find((v) => v.labels.result === result)?.value ?? 0
}

beforeEach(async () => {
  stateDir = await mkdtemp(join(tmpdir(), 'mm-journal-'))
  acks = []
  actions = []
})
afterEach(async () => {
  for (const l of open.splice(0)) await l.close()
  await rm(stateDir, { recursive: true, force: true })
})

describe('OfflineTurnLog', () => {
  it('keeps each turn once, acks new and duplicate ids, publishes late actions', async () => {
    const l = await newLog()
    const light = { component: 'light', action: 'set', room: 'kitchen', state: 'on' }
    expect(l.handle('mirror-1', turn('t1'))).toBe('new')
    expect(l.handle('mirror-1', turn('t2', { skill: 'light', transcript: 'turn on the kitchen light', reply: 'Turning on the kitchen light.', action: light }))).toBe('new')
    expect(l.handle('mirror-1', turn('t1'))).toBe('duplicate')
    // Same id from another node is another turn.
    expect(l.handle('mirror-2', turn('t1'))).toBe('new')
    await l.flush()
    expect(acks).toEqual([{ nodeId: 'mirror-1', ids: ['t1', 't2'] }, { nodeId: 'mirror-2', ids: ['t1'] }])
    expect(actions).toEqual([{ component: 'light', action: { action: 'set', room: 'kitchen', state: 'on', nodeId: 'mirror-1', offline: true, at: turn('t2').at } }])
    expect(l.list().map((t) => `${t.nodeId}/${t.id}`)).toEqual(['mirror-2/t1', 'mirror-1/t2', 'mirror-1/t1'])
    expect(await total('new')).toBe(3)
    expect(await total('duplicate')).toBe(1)
    const lines = (await readFile(join(stateDir, 'incidents', 'offline-turns.jsonl'), 'utf8')).trim().split('\n')
    expect(lines).toHaveLength(3)
    expect(JSON.parse(lines[1]!)).toMatchObject({ nodeId: 'mirror-1', id: 't2', action: light })
  })

  it('dedups across a restart and still acks the replay', async () => {
    const a = await newLog()
    a.handle('mirror-1', turn('t1'))
    a.handle('mirror-1', turn('t2'))
    await a.close()
    open.splice(0)
    acks = []

    const b = await newLog()
    expect(b.list()).toHaveLength(2)
    expect(b.handle('mirror-1', turn('t1'))).toBe('duplicate')
    expect(b.handle('mirror-1', turn('t2'))).toBe('duplicate')
    expect(b.handle('mirror-1', turn('t3'))).toBe('new')
    await b.flush()
    expect(acks).toEqual([{ nodeId: 'mirror-1', ids: ['t1', 't2', 't3'] }])
    expect(actions).toEqual([])
    const lines = (await readFile(join(stateDir, 'incidents', 'offline-turns.jsonl'), 'utf8')).trim().split('\n')
    expect(lines.map((x) => JSON.parse(x).id)).toEqual(['t1', 't2', 't3'])
  })

  it('acks malformed turns that have an id, and batches acks without flush()', async () => {
    const l = await newLog()
    expect(l.handle('mirror-1', { type: 'offline_turn', id: 'bad', at: 'yesterday' })).toBe('invalid')
    expect(l.handle('mirror-1', { type: 'offline_turn' })).toBe('invalid')
    expect(l.handle('mirror-1', turn('t1', { action: { component: '../x', action: 'set', room: null } }))).toBe('invalid')
    await new Promise((r) => setTimeout(r, 80))
    expect(acks).toEqual([{ nodeId: 'mirror-1', ids: ['bad', 't1'] }])
    expect(l.list()).toEqual([])
    expect(await total('invalid')).toBe(3)
  })

  it('writes node state changes to the daily incident journal', async () => {
    const l = await newLog()
    const at = Date.UTC(2026, 10, 25, 12, 0, 0)
    l.nodeState({ id: 'mirror-1', state: 'online', stateSince: at }, null) // first sight: not an incident
    l.nodeState({ id: 'mirror-1', state: 'offline', stateSince: at + 1000 }, 'online')
    l.nodeState({ id: 'mirror-1', state: 'online', stateSince: at + 5000 }, 'offline')
    await l.close()
    open.splice(0)
    const lines = (await readFile(join(stateDir, 'incidents', '2026-11-25.jsonl'), 'utf8')).trim().split('\n').map((x) => JSON.parse(x))
    expect(lines).toEqual([
      { type: 'node_state', nodeId: 'mirror-1', from: 'online', to: 'offline', at: at + 1000 },
      { type: 'node_state', nodeId: 'mirror-1', from: 'offline', to: 'online', at: at + 5000 },
    ])
  })

  it('GET /api/offline-turns lists newest first', async () => {
    const l = await newLog()
    l.handle('mirror-1', turn('t1'))
    l.handle('mirror-1', turn('t2'))
    await l.flush()
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

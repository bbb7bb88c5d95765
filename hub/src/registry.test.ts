import { Registry } from 'prom-client'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { createLogger, type NodeHeartbeat } from '@mirrormesh/broker'
import { NodeRegistry, type NodeState } from './registry.js'

const staleMs = 3000
let clock: number
let registry: NodeRegistry

function hb(over: Partial<NodeHeartbeat> = {}): NodeHeartbeat {
  return { v: 1, ts: clock, seq: 1, uptimeS: 5, cpuPct: 10, memPct: 20, rssMb: 60, temperatureC: 45, versions: { agent: '0.1.0' }, mode: 'online', ...over }
}
const status = (node: string, s: 'online' | 'offline') => registry.handle('nodeStatus', { node }, s)
const heartbeat = (node: string, over: Partial<NodeHeartbeat> = {}) => registry.handle('nodeHeartbeat', { node }, hb(over))
const stateOf = (node: string) => registry.get(node)?.state
/** Move the injected clock and the registry's ageing timer together. */
function tick(ms: number) {
  clock += ms
  vi.advanceTimersByTime(ms)
}

beforeEach(() => {
  vi.useFakeTimers()
  clock = 1_700_000_000_000
  registry = new NodeRegistry({ staleMs, metrics: new Registry(), log: createLogger({ name: 'test', level: 'silent' }), now: () => clock })
  registry.start()
})
afterEach(() => {
  registry.stop()
  vi.useRealTimers()
})

describe('NodeRegistry', () => {
  it('does not know a node before it speaks', () => {
    expect(registry.get('kitchen')).toBeUndefined()
    expect(registry.list()).toEqual([])
  })

  it('moves online status → recovering, then a heartbeat in online mode → online', () => {
    status('kitchen', 'online')
    expect(stateOf('kitchen')).toBe('recovering')
    heartbeat('kitchen')
    expect(stateOf('kitchen')).toBe('online')
    expect(registry.online().map((n) => n.id)).toEqual(['kitchen'])
  })

  it('keeps a node recovering while it reports offline or recovering mode', () => {
    status('kitchen', 'online')
    heartbeat('kitchen', { mode: 'offline' })
    expect(stateOf('kitchen')).toBe('recovering')
    heartbeat('kitchen', { mode: 'recovering' })
    expect(stateOf('kitchen')).toBe('recovering')
  })

  it('marks a node stale when no heartbeat arrives for longer than staleMs, and online again on the next one', () => {
    status('kitchen', 'online')
    heartbeat('kitchen')
    tick(staleMs)
    expect(stateOf('kitchen')).toBe('online')
    tick(600) // past staleMs plus one ageing interval
    expect(stateOf('kitchen')).toBe('stale')
    expect(registry.get('kitchen')?.heartbeatAgeMs).toBe(staleMs + 600)
    heartbeat('kitchen')
    expect(stateOf('kitchen')).toBe('online')
  })

  it('stays online while heartbeats keep coming', () => {
    status('kitchen', 'online')
    for (let i = 0; i < 20; i++) {
      heartbeat('kitchen', { seq: i })
      tick(1000)
    }
    expect(stateOf('kitchen')).toBe('online')
  })

  it('goes offline on status offline and waits for a fresh heartbeat after reconnecting', () => {
    status('kitchen', 'online')
    heartbeat('kitchen')
    status('kitchen', 'offline')
    expect(stateOf('kitchen')).toBe('offline')
    status('kitchen', 'online')
    expect(stateOf('kitchen')).toBe('recovering') // the old heartbeat does not count for the new session
    expect(registry.get('kitchen')?.lastHeartbeatAt).toBeNull()
  })

  it('treats a heartbeat as proof of life when the retained status was lost', () => {
    heartbeat('kitchen')
    expect(registry.get('kitchen')).toMatchObject({ state: 'online', status: 'online' })
  })

  it("emits 'state' events with from and to", () => {
    const seen: Array<[NodeState | null, NodeState, number]> = []
    registry.on('state', (view, from) => seen.push([from, view.state, view.stateSince]))
    const t0 = clock
    status('kitchen', 'online')
    tick(100)
    heartbeat('kitchen')
    tick(staleMs + 500)
    status('kitchen', 'offline')
    expect(seen.map(([from, to]) => [from, to])).toEqual([
      [null, 'offline'], ['offline', 'recovering'], ['recovering', 'online'], ['online', 'stale'], ['stale', 'offline'],
    ])
    expect(seen[2]![2]).toBe(t0 + 100)
  })

  it('reports heartbeat delay quantiles', () => {
    status('kitchen', 'online')
    for (let d = 1; d <= 100; d++) heartbeat('kitchen', { ts: clock - d })
    expect(registry.delayStats()).toEqual({ samples: 100, total: 100, p50Ms: 50, p95Ms: 95, p99Ms: 99, maxMs: 100 })
  })

  it('reports clock skew as node clock minus hub clock', () => {
    heartbeat('ahead', { ts: clock + 250 })
    heartbeat('behind', { ts: clock - 40 })
    expect(registry.get('ahead')?.clockSkewMs).toBe(250)
    expect(registry.get('behind')?.clockSkewMs).toBe(-40)
    expect(registry.delayStats().maxMs).toBe(40) // a node ahead of the hub counts as 0 delay, not negative
    expect(registry.delayStats().p50Ms).toBe(0)
  })

  it('exposes heartbeat details in the node view', () => {
    heartbeat('kitchen', { seq: 7, cpuPct: 33, versions: { agent: '1.2.3' } })
    registry.handle('nodePresence', { node: 'kitchen' }, { v: 1, ts: clock, present: true, since: clock, source: 'radar' })
    expect(registry.get('kitchen')).toMatchObject({ seq: 7, cpuPct: 33, versions: { agent: '1.2.3' }, mode: 'online', presence: { present: true, source: 'radar' } })
  })
})

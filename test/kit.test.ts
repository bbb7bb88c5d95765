// The mesh in one process through test/support/kit.ts: real broker, Hub and NodeAgent objects,
// real MQTT, no spawned processes.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { createKit, fakeClock, type Kit } from './support/kit.js'

let kit: Kit
beforeEach(async () => { kit = await createKit() })
afterEach(async () => {
  vi.useRealTimers()
  await kit.close()
})

describe('in-process mesh (test kit)', () => {
  it("a NodeAgent's heartbeats reach the Hub's registry: the node is online with its heartbeat data", async () => {
    const hub = await kit.hub()
    const agent = await kit.agent('kitchen')
    await kit.waitFor(() => agent.state.state === 'online', { what: 'the agent to see the hub' })
    const node = await kit.waitFor(() => { const n = hub.registry.get('kitchen'); return n?.state === 'online' && (n.seq ?? 0) >= 2 && n }, { what: 'two heartbeats in the registry' })
    expect(node).toMatchObject({ id: 'kitchen', status: 'online', mode: 'online' })
    expect(node.heartbeatAgeMs).toBeLessThan(1000)
    expect(Math.abs(node.clockSkewMs ?? Infinity)).toBeLessThan(1000)
    // A graceful stop publishes offline itself.
    await agent.stop()
    await kit.waitFor(() => hub.registry.get('kitchen')?.state === 'offline', { what: 'the hub to see kitchen offline' })
  })

  it('a node that falls silent is aged to stale by the hub once NODE_STALE_MS has passed on its clock', async () => {
    const clock = fakeClock() // before the hub: the registry reads this clock
    const hub = await kit.hub({ NODE_STALE_MS: '60000' }) // a minute: only the faked clock gets there
    const node = await kit.meshClient(hub.url, 'hall')
    await node.publish('nodeStatus', { node: 'hall' }, 'online')
    await node.publish('nodeHeartbeat', { node: 'hall' }, { v: 1, ts: Date.now(), seq: 1, uptimeS: 1, cpuPct: null, memPct: null, rssMb: 50, temperatureC: null, versions: { agent: '0.0.0' }, mode: 'online' })
    await kit.waitFor(() => hub.registry.get('hall')?.state === 'online', { what: 'hall online' })
    clock.advance(59_000)
    await new Promise((r) => setTimeout(r, 600)) // a full ageing pass (every ≤ 500 ms) at 59 s
    expect(hub.registry.get('hall')?.state).toBe('online')
    clock.advance(2_000)
    await kit.waitFor(() => hub.registry.get('hall')?.state === 'stale', { timeoutMs: 2000, what: 'hall stale after 61 s of silence' })
    expect(hub.registry.get('hall')?.heartbeatAgeMs).toBeGreaterThanOrEqual(61_000)
  })
})

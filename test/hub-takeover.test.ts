// The hub's own MQTT client taken over many times in a row (a second connection with its
// client id): every time, the hub's Last Will says offline and the hub comes back online. Once,
// a node stayed offline afterwards although the retained hub status was online and heartbeats
// were fresh: the broker had dropped the hub's retained `online` as a "duplicate" because the
// hub's next heartbeat overtook it. Every node must end up online.
import { afterEach, describe, expect, it } from 'vitest'
import { createKit, type Kit } from './support/kit.js'

let kit: Kit
afterEach(() => kit?.close())

describe('the hub client taken over ten times in a row', () => {
  it('every node ends up online again', async () => {
    kit = await createKit()
    const hub = await kit.hub()
    const agents = await Promise.all((['kitchen', 'hall', 'a', 'b'] as const).map((id) => kit.agent(id)))
    await kit.waitFor(() => agents.every((a) => a.state.state === 'online'), { what: 'every node online', timeoutMs: 20_000 })
    const aedes = hub.broker!.aedes! as unknown as { clients: Record<string, { close(): void; connected: boolean }> }
    for (let i = 0; i < 10; i++) {
      const before = aedes.clients['hub-main']
      expect(before).toBeDefined()
      // Closing the connection without DISCONNECT: what a takeover does to the old client.
      before!.close()
      await kit.waitFor(() => aedes.clients['hub-main'] && aedes.clients['hub-main'] !== before && aedes.clients['hub-main'].connected, { what: `the hub reconnected (${i + 1})`, timeoutMs: 20_000 })
    }
    await kit.waitFor(() => agents.every((a) => a.state.state === 'online'), { what: 'every node online after the takeovers', timeoutMs: 20_000 })
    console.log(`[takeover] node states after 10 hub takeovers: ${agents.map((a) => a.state.state).join(', ')}`)
    // Found on the way: the hub's stop() then hung forever (a QoS 1 message lost with a killed connection is never acknowledged).
    const t = performance.now()
    await hub.stop()
    expect(performance.now() - t).toBeLessThan(15_000)
  }, 120_000)
})

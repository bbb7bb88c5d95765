// Power recovery: the hub and every mirror lose power together; the hub comes back and 200
// nodes (in-process MeshClients with the agent's jittered backoff) reconnect at once. The
// broker must not see a storm: connection attempts per second are counted by a proxy in front
// of the broker and printed; every node must end up online in the hub's registry.
import { afterEach, describe, expect, it } from 'vitest'
import { killAll, sleep, waitFor } from '../support/harness.js'
import { startFleetHub } from '../support/fleet-hub.js'
import { startFleet, type SimFleet } from '../support/sim-nodes.js'
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js'

const N = Number(process.env.FAULTS_NODES ?? 200)
let fleet: SimFleet | undefined
let proxy: TcpProxy | undefined

afterEach(async () => {
  await fleet?.stop()
  await proxy?.close()
  fleet = proxy = undefined
  await killAll()
})

describe('power recovery', () => {
  it(`${N} nodes reconnect after the hub returns: attempts per second bounded, every node online`, { timeout: 240_000 }, async () => {
    const fh = await startFleetHub(N)
    proxy = await startTcpProxy(fh.hub.mqttPort)
    fleet = startFleet(proxy.url, fh.creds)
    await waitFor(async () => fleet!.connected() === N && (await fh.online()) === N, { timeoutMs: 90_000, intervalMs: 500, what: `${N} nodes online` })

    fh.hub.kill('SIGKILL')
    await fh.hub.exited
    const outageAt = Date.now()
    await waitFor(() => fleet!.connected() === 0, { timeoutMs: 10_000, what: 'every node disconnected' })
    await sleep(5000) // the power is out for a while: every node keeps retrying with its backoff
    const during = proxy.rate(outageAt)

    const backAt = Date.now()
    await fh.restart()
    const readyMs = Date.now() - backAt
    await waitFor(() => fleet!.connected() === N, { timeoutMs: 90_000, intervalMs: 100, what: `${N} nodes reconnected` })
    const reconnectMs = Date.now() - backAt
    await waitFor(async () => (await fh.online()) === N, { timeoutMs: 30_000, intervalMs: 250, what: `hub sees ${N} nodes online` })
    const onlineMs = Date.now() - backAt
    const after = proxy.rate(backAt)
    console.log(`power recovery, ${N} nodes: outage 5 s: ${during.total} attempts (max ${during.maxPerSecond}/s); hub ready after ${readyMs} ms; ` +
      `all reconnected ${reconnectMs} ms, all online in the registry ${onlineMs} ms after the restart; ${after.total} attempts after the restart, max ${after.maxPerSecond}/s`)
    // Jittered backoff: the nodes never all come in the same second (without it, N would).
    expect(after.maxPerSecond).toBeLessThan(N)
    // Against a dead hub the retries thin out as the backoff grows: the last second of the outage sees fewer than the first.
    const first = proxy.rate(outageAt).maxPerSecond
    const last = proxy.accepts.filter((t) => t >= backAt - 1000 && t < backAt).length
    console.log(`outage: first second ${first}/s, last second ${last}/s`)
    expect(last).toBeLessThan(first)
    expect(fleet.nodes.every((n) => n.connects >= 2)).toBe(true)
  })
})

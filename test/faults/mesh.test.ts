// Mesh faults with real processes: the embedded broker restarting with the hub (retained
// state must survive) and a hub that flaps every second (the silent partition is in
// partition.test.ts, on the two-host bed). Figures are printed; deadlines
// are generous and only say "eventually".
import { afterEach, describe, expect, it } from 'vitest'
import { killAll, sleep, startAgent, waitFor, type AgentProc } from '../support/harness.js'
import { BASE, createMesh, type Mesh } from '../support/mesh.js'

const FLAP_S = Number(process.env.FAULTS_FLAP_S ?? 15)

afterEach(async () => {
  await killAll()
})

async function retained(mesh: Mesh) {
  const [status, config, manifest] = await Promise.all([
    mesh.sub(`${BASE}/hub/+/status`), mesh.sub(`${BASE}/nodes/kitchen/config`), mesh.sub(`${BASE}/cache/manifest`),
  ])
  return { status, config: config && JSON.parse(config), manifest: manifest && JSON.parse(manifest) }
}

describe('broker restart with persistence', () => {
  it('retained hub status, node config and bundle manifest survive a hub (and embedded broker) restart; no node left offline', { timeout: 180_000 }, async () => {
    const mesh = await createMesh('embedded', { hubEnv: { BUNDLE_ENABLED: 'true', ROOMS: 'kitchen|hall' } })
    const agents: AgentProc[] = []
    for (const id of ['kitchen', 'hall'] as const) agents.push(await startAgent({ nodeId: id, mqttUrl: mesh.url, password: mesh.passwords[id] }))
    const put = await mesh.hub.http('/api/nodes/kitchen/config', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ room: 'kitchen', name: 'Kitchen mirror', volume: 40 }) })
    expect(put.status).toBe(200)
    await waitFor(async () => (await mesh.hub.http('/api/bundle/manifest')).status === 200, { timeoutMs: 90_000, what: 'bundle built' })
    const before = await waitFor(async () => { const r = await retained(mesh); return r.manifest && r.config?.name === 'Kitchen mirror' && r.status === 'online' && r }, { timeoutMs: 30_000, what: 'retained state published' })

    for (const sig of ['SIGTERM', 'SIGKILL'] as const) {
      mesh.hub.kill(sig)
      await mesh.hub.exited
      const t0 = Date.now()
      await mesh.restartHub({ timeoutMs: 60_000 })
      const after = await retained(mesh)
      expect(after.status).toBe('online')
      expect(after.config).toMatchObject({ room: 'kitchen', name: 'Kitchen mirror', volume: 40 })
      expect(after.manifest).toMatchObject({ version: before.manifest.version, sha256: before.manifest.sha256 })
      for (const a of agents) await a.waitState('online', 30_000)
      await mesh.waitNode('kitchen', 'online', 30_000)
      await mesh.waitNode('hall', 'online', 30_000)
      console.log(`broker restart (${sig}): every node online again ${Date.now() - t0} ms after the restart began`)
    }
    expect((await agents[0]!.health()).room ?? 'kitchen').toBe('kitchen')
  })
})

describe('hub flapping', () => {
  it(`a hub killed every second for ${FLAP_S} s: every node ends online with the right state`, { timeout: 120_000 + FLAP_S * 4000 }, async () => {
    const mesh = await createMesh('embedded', { hubEnv: { ROOMS: 'kitchen|hall' } })
    const ids = ['kitchen', 'hall', 'a', 'b'] as const
    const agents = await Promise.all(ids.map((id) => startAgent({ nodeId: id, mqttUrl: mesh.url, password: mesh.passwords[id] })))
    for (const [i, id] of ids.entries()) {
      if (i < 2) await mesh.hub.http(`/api/nodes/${id}/config`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ room: id, name: `mirror ${id}` }) })
    }
    await Promise.all(agents.map((a) => a.waitState('online', 20_000)))
    const end = Date.now() + FLAP_S * 1000
    let flaps = 0
    while (Date.now() < end) {
      mesh.hub.kill('SIGKILL')
      await mesh.hub.exited
      // Restart without waiting for readiness, then kill again a second later: it may never get ready.
      await mesh.restartHub({ wait: false })
      flaps++
      await sleep(1000)
    }
    mesh.hub.kill('SIGKILL')
    await mesh.hub.exited
    const t0 = Date.now()
    await mesh.restartHub({ timeoutMs: 60_000 })
    for (const id of ids) await mesh.waitNode(id, 'online', 60_000)
    await Promise.all(agents.map((a) => a.waitState('online', 60_000)))
    const settledMs = Date.now() - t0
    for (const [i, id] of ids.entries()) {
      const cfg = await mesh.sub(`${BASE}/nodes/${id}/config`)
      if (i < 2) expect(JSON.parse(cfg!)).toMatchObject({ room: id, name: `mirror ${id}` })
      expect(await mesh.sub(`${BASE}/nodes/${id}/status`)).toBe('online')
    }
    console.log(`hub flapping: ${flaps} kills in ${FLAP_S} s; all ${ids.length} nodes online ${settledMs} ms after the last restart`)
  })
})

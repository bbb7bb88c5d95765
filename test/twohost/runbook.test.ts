// Runbook scenarios on the two-host bed (test/support/twohost.ts), with Restart=always as the
// units say it (the bed restarts a process that died on its own after RestartSec): the hub
// crashes and comes back by itself; a power cut (everything killed, then hub and nodes started
// at the same moment) ends with every node online; a drain (POST /api/drain) stops the hub
// cleanly and the restart brings the nodes back.
import { afterAll, beforeAll, expect, it } from 'vitest'
import { waitFor } from '../support/harness.js'
import { createBed, describeBed, type Bed } from '../support/twohost.js'

const NODES = ['kitchen', 'hall']
let bed: Bed | undefined
afterAll(async () => { await bed?.teardown() })

/** Every node online, as both sides see it: the hub's registry and each node's own /healthz. */
async function allOnline(b: Bed, what: string): Promise<void> {
  await waitFor(async () => {
    const nodes = (await b.http('hub', '/api/nodes')).body.nodes as Array<{ id: string; state: string }>
    return NODES.every((id) => nodes.find((n) => n.id === id)?.state === 'online')
  }, { timeoutMs: 60_000, intervalMs: 250, what: `hub lists ${NODES.join(', ')} online (${what})` })
  for (const id of NODES) await waitFor(async () => (await b.http(id, '/healthz')).body.state === 'online', { timeoutMs: 30_000, intervalMs: 250, what: `${id} online by its /healthz (${what})` })
}

describeBed('two hosts: runbook (hub crash, power recovery, drain)', () => {
  beforeAll(async () => {
    bed = await createBed({ nodes: NODES, restart: true })
    await bed.tls()
    await bed.startHub()
    for (const id of NODES) await bed.addNode(id)
    await Promise.all(NODES.map((id) => bed!.startNode(id)))
    await allOnline(bed, 'first start')
  }, 180_000)

  it('hub crash (SIGKILL): Restart=always brings it back after RestartSec and every node reconnects', { timeout: 180_000 }, async () => {
    const b = bed!
    const first = b.hub.proc!
    const exit = await b.killHub()
    expect(exit?.signal).toBe('SIGKILL')
    await waitFor(async () => (await b.http('kitchen', '/healthz')).body.state === 'offline', { timeoutMs: 20_000, what: 'kitchen offline while the hub is down' })
    // A new process, after RestartSec (2 s), READY=1 from it.
    const second = await waitFor(() => b.hub.runs.length === 2 && b.hub.runs[1], { timeoutMs: 30_000, what: 'hub restarted' })
    expect(second.pid).not.toBe(first.pid)
    await b.hub.notify.waitFor('READY', second.startedAt, { timeoutMs: 120_000 })
    await allOnline(b, 'after the crash')
  })

  it('power recovery: everything killed, then hub and nodes started at once → every node online', { timeout: 240_000 }, async () => {
    const b = bed!
    await Promise.all([b.stopHub('SIGKILL'), ...NODES.map((id) => b.stopNode(id, 'SIGKILL'))])
    expect([b.hub.proc, ...NODES.map((id) => b.nodes[id]!.proc)]).toEqual([undefined, undefined, undefined])
    const since = Date.now()
    await b.startAll()
    for (const h of [b.hub, ...NODES.map((id) => b.nodes[id]!)]) expect(h.notify.with('READY', since).length, `${h.name} READY=1`).toBeGreaterThanOrEqual(1)
    await allOnline(b, 'after power recovery')
  })

  it('drain: POST /api/drain → STOPPING=1, clean exit 0 → restarted → every node online', { timeout: 180_000 }, async () => {
    const b = bed!
    const run = b.hub.proc!
    const runs = b.hub.runs.length
    const since = Date.now()
    const r = await b.http('hub', '/api/drain', { method: 'POST' })
    expect(r.status).toBe(202)
    expect(r.body).toEqual({ status: 'draining' })
    await b.hub.notify.waitFor('STOPPING', since, { timeoutMs: 10_000 })
    const exit = await run.exited
    expect(exit).toEqual({ code: 0, signal: null })
    const next = await waitFor(() => b.hub.runs.length === runs + 1 && b.hub.runs[runs], { timeoutMs: 30_000, what: 'hub restarted after the drain' })
    await b.hub.notify.waitFor('READY', next.startedAt, { timeoutMs: 120_000 })
    await allOnline(b, 'after the drain')
    expect((await b.http('hub', '/readyz')).status).toBe(200)
  })
})

// Three hub processes (HUB_ROLE=active) against one real Mosquitto: the four nodes are split by
// the retained nodes/{id}/assign (rendezvous over the live hubs). One hub SIGKILLed → only its
// nodes move, to the hub the rule names among the survivors; it comes back → they return.
import mqtt from 'mqtt'
import { afterEach, describe, expect, it } from 'vitest'
import { killAll, sleep, startAgent, tempDir, waitFor, type AgentProc } from './support/harness.js'
import { metricValue } from './support/mesh.js'
import { BASE, createHubBed, epochsIncrease, NODES, rendezvous, type HubBed } from './support/multihub.js'

let bed: HubBed | undefined

afterEach(async () => {
  await bed?.close()
  bed = undefined
  await killAll()
})

describe('three hubs on one Mosquitto', () => {
  it('nodes split by sticky assignment; one hub killed → its nodes reassigned, the rest stay; it returns → rebalanced', { timeout: 90_000 }, async () => {
    const ids = ['one', 'two', 'three'] // ids whose hashes spread the four nodes over all three (2-1-1)
    bed = await createHubBed(ids)
    for (const id of ids) await bed.startHub(id, 'active')
    const agents: AgentProc[] = []
    // One at a time: free ports are picked per process.
    for (const id of NODES) {
      agents.push(await startAgent({ nodeId: id, mqttUrl: bed.url, password: bed.passwords[id], env: { MQTT_USERNAME: id, MIRRORMESH_STATE_DIR: await tempDir('mm-node-') } }))
    }
    for (const n of NODES) await bed.waitAssigned(n, rendezvous(n, ids))
    for (const a of agents) await a.waitState('online', 15_000)

    // Kill the hub with the most nodes (with four nodes over three hubs, one has at least two).
    const count = (h: string) => NODES.filter((n) => bed!.hubOf(n) === h).length
    const victim = [...ids].sort((x, y) => count(y) - count(x))[0]!
    const moved = NODES.filter((n) => bed!.hubOf(n) === victim)
    const stayed = NODES.filter((n) => bed!.hubOf(n) !== victim)
    const before = new Map(stayed.map((n) => [n, bed!.current.get(n)!.epoch]))
    const mark = bed.assigns.length
    bed.hubs.get(victim)!.kill('SIGKILL')
    const survivors = ids.filter((h) => h !== victim)
    for (const n of moved) await bed.waitAssigned(n, rendezvous(n, survivors), 15_000)
    for (const n of stayed) expect(bed.current.get(n)!.epoch).toBe(before.get(n)) // sticky: untouched
    for (const [i, n] of NODES.entries()) {
      await waitFor(async () => { const h = await agents[i]!.health(); return h.hub === bed!.hubOf(n) && h.state === 'online' }, { timeoutMs: 15_000, what: `${n} online with ${bed.hubOf(n)}` })
    }

    await bed.startHub(victim, 'active')
    for (const n of NODES) await bed.waitAssigned(n, rendezvous(n, ids), 20_000)
    for (const [i, n] of NODES.entries()) {
      await waitFor(async () => { const h = await agents[i]!.health(); return h.hub === bed!.hubOf(n) && h.state === 'online' }, { timeoutMs: 15_000, what: `${n} back online with ${bed.hubOf(n)}` })
    }
    expect(epochsIncrease(bed.assigns)).toBe(true)
    // Since the kill: each moved node one takeover and one hand-back; the others were never written.
    const since = bed.assigns.slice(mark)
    for (const n of moved) expect(since.filter((a) => a.node === n).map((a) => a.hub)).toEqual([rendezvous(n, survivors), victim])
    for (const n of stayed) expect(since.filter((a) => a.node === n)).toHaveLength(0)
  })
})

describe('typed turns with several hubs', () => {
  it('a turn typed on nodes/{id}/turn/text is answered once, by the node\'s hub', { timeout: 90_000 }, async () => {
    const ids = ['one', 'two']
    bed = await createHubBed(ids)
    for (const id of ids) await bed.startHub(id, 'active', { PIPELINE_ENABLED: 'true' })
    const node = 'kitchen'
    const c = await mqtt.connectAsync(bed.url, { clientId: `node-${node}/t-${Math.random().toString(36).slice(2, 8)}`, username: node, password: bed.passwords[node], reconnectPeriod: 0 })
    try {
      const events: Array<{ type: string; turnId?: number }> = []
      c.on('message', (topic, payload) => { if (topic.endsWith('/events')) events.push(JSON.parse(payload.toString()) as { type: string }) })
      await c.subscribeAsync(`${BASE}/nodes/${node}/events`, { qos: 1 })
      await c.publishAsync(`${BASE}/nodes/${node}/heartbeat`, JSON.stringify({ v: 1, ts: Date.now(), seq: 0, uptimeS: 1, cpuPct: null, memPct: null, rssMb: 50, temperatureC: null, versions: {}, mode: 'online', room: null }))
      await c.publishAsync(`${BASE}/nodes/${node}/status`, 'online', { qos: 1, retain: true })
      const hub = rendezvous(node, ids)
      await bed.waitAssigned(node, hub)
      await c.publishAsync(`${BASE}/nodes/${node}/turn/text`, JSON.stringify({ text: 'what time is it' }), { qos: 1 })
      await waitFor(() => events.some((e) => e.type === 'reply'), { timeoutMs: 30_000, what: 'the reply' })
      await sleep(1500) // a second hub's answer would come here
      expect(events.filter((e) => e.type === 'reply')).toHaveLength(1)
      expect(events.filter((e) => e.type === 'transcript')).toHaveLength(1)
      const turns = async (h: string) => metricValue((await bed!.hubs.get(h)!.http('/metrics')).body, 'mirrormesh_turns_total')
      expect(await turns(hub)).toBe(1)
      expect(await turns(ids.find((h) => h !== hub)!)).toBe(0)
    } finally {
      await c.endAsync(true).catch(() => undefined)
    }
  })
})

// MQTT over WebSocket gets the same authentication and contract-derived ACL as TCP: proved on
// the embedded broker (in process, test/support/kit.ts) with real mqtt.js clients over ws://.
import type { MqttClient } from 'mqtt'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { BASE, createKit, type Kit, type KitBroker } from './support/kit.js'

let kit: Kit
let b: KitBroker
let seen: Array<{ topic: string; payload: string }>
beforeEach(async () => {
  kit = await createKit()
  b = await kit.broker()
  // An observer over TCP sees everything published under the base.
  const watcher = await kit.connect(b.url, 'dash')
  seen = []
  watcher.on('message', (topic, p) => seen.push({ topic, payload: p.toString() }))
  await watcher.subscribeAsync(`${BASE}/#`, { qos: 1 })
})
afterEach(() => kit.close())

const closed = (c: MqttClient) => new Promise<void>((r) => (c.disconnected ? r() : c.once('close', () => r())))
/** Publishes and gives the broker time to refuse it (aedes closes the connection; a refused publish gets no PUBACK). */
const attempt = (c: MqttClient, topic: string, payload: string | Buffer) =>
  Promise.race([c.publishAsync(topic, payload, { qos: 1 }).then(() => 'acked', () => 'failed'), closed(c).then(() => 'closed'), new Promise((r) => setTimeout(() => r('no answer'), 1000))])
/** Every message the watcher got on `topic` once a later sentinel from an allowed publisher has arrived. */
async function seenOn(topic: string): Promise<string[]> {
  const sentinel = await kit.connect(b.url, 'dash')
  const id = `${Date.now()}-${Math.random()}`
  await sentinel.publishAsync(`${BASE}/nodes/kitchen/set`, JSON.stringify({ v: 1, ts: Date.now(), ptt: false, id }), { qos: 1 })
  await kit.waitFor(() => seen.some((m) => m.payload.includes(id)), { what: 'the sentinel' })
  return seen.filter((m) => m.topic === topic).map((m) => m.payload)
}

describe('MQTT over WebSocket: same credentials and ACL as TCP', () => {
  it('a node over WS publishes its own topics, which the observer receives', async () => {
    const a = await kit.connect(b.wsUrl, 'a')
    expect(await attempt(a, `${BASE}/nodes/a/status`, 'online')).toBe('acked')
    expect(await attempt(a, `${BASE}/nodes/a/probe`, 'p-1')).toBe('acked')
    expect(await seenOn(`${BASE}/nodes/a/status`)).toEqual(['online'])
    expect(await seenOn(`${BASE}/nodes/a/probe`)).toEqual(['p-1'])
    expect(a.connected).toBe(true)
  })

  it("a node over WS is refused another node's topic: never delivered, connection closed", async () => {
    const a = await kit.connect(b.wsUrl, 'a')
    expect(await attempt(a, `${BASE}/nodes/b/status`, 'offline')).not.toBe('acked')
    expect(await seenOn(`${BASE}/nodes/b/status`)).toEqual([])
    expect(a.connected).toBe(false)
  })

  it("a node over WS cannot subscribe to another node's subtree (SUBACK 128)", async () => {
    const a = await kit.connect(b.wsUrl, 'a')
    const granted = await a.subscribeAsync(`${BASE}/nodes/b/#`).then((g) => g[0]?.qos, () => 128)
    expect(granted).toBe(128)
  })

  it('an observer over WS may send node commands but cannot publish audio or status', async () => {
    const obs = await kit.connect(b.wsUrl, 'dash')
    expect(await attempt(obs, `${BASE}/nodes/a/set`, JSON.stringify({ v: 1, ts: Date.now(), ptt: true }))).toBe('acked')
    expect((await seenOn(`${BASE}/nodes/a/set`)).length).toBe(1)
    expect(await attempt(obs, `${BASE}/nodes/a/audio/in`, Buffer.alloc(640))).not.toBe('acked')
    const obs2 = await kit.connect(b.wsUrl, 'dash')
    expect(await attempt(obs2, `${BASE}/nodes/a/status`, 'offline')).not.toBe('acked')
    expect(await seenOn(`${BASE}/nodes/a/audio/in`)).toEqual([])
    expect(await seenOn(`${BASE}/nodes/a/status`)).toEqual([])
  })

  it('a wrong password or a borrowed client id is refused over WS', async () => {
    await expect(kit.connect(b.wsUrl, 'a', { password: 'wrong' })).rejects.toThrow(/not authori[sz]ed|bad user ?name or password/i)
    await expect(kit.connect(b.wsUrl, 'a', { clientId: 'node-b' })).rejects.toThrow(/not authori[sz]ed/i)
  })
})

describe('retain follows the contract, whoever publishes', () => {
  it("a retained command from a dashboard is delivered but not kept: a late subscriber (a node reconnecting) doesn't get it", async () => {
    const dash = await kit.connect(b.url, 'dash')
    await dash.publishAsync(`${BASE}/nodes/a/set`, JSON.stringify({ ptt: true }), { qos: 1, retain: true })
    expect((await seenOn(`${BASE}/nodes/a/set`)).length).toBe(1) // delivered live
    const a = await kit.connect(b.url, 'a')
    const got: string[] = []
    a.on('message', (topic) => got.push(topic))
    await a.subscribeAsync(`${BASE}/nodes/a/set`, { qos: 1 })
    // A topic the contract does retain still keeps its message (the node's own status).
    await a.publishAsync(`${BASE}/nodes/a/status`, 'online', { qos: 1, retain: true })
    await a.subscribeAsync(`${BASE}/nodes/a/status`, { qos: 1 })
    await kit.waitFor(() => got.includes(`${BASE}/nodes/a/status`), { what: 'the retained status' })
    expect(got).not.toContain(`${BASE}/nodes/a/set`)
  })
})

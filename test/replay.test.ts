// Offline-journal replay on the wire, on both brokers (the hub's embedded aedes, then an
// external Mosquitto with the generated ACL): a node asks on nodes/{id}/request/replay, the
// hub answers on nodes/{id}/response/replay by transaction; another node can neither ask
// under its id nor read its answers, and a node cannot forge the hub's answer.
import { afterEach, describe, expect, it } from 'vitest'
import type { MqttClient } from 'mqtt'
import { killAll, sleep, waitFor } from './support/harness.js'
import { BASE, brokerKinds, createMesh } from './support/mesh.js'

afterEach(async () => {
  await killAll()
})

const request = (transaction: string, turns: unknown[]) => JSON.stringify({ v: 1, ts: Date.now(), transaction, turns })
const turn = (id: string) => ({ id, at: Date.now() - 60_000, transcript: 'what time is it', reply: "It's 9:07 PM", skill: 'clock' })

async function collect(c: MqttClient, filter: string): Promise<{ topic: string; body: Record<string, unknown> }[]> {
  const got: { topic: string; body: Record<string, unknown> }[] = []
  c.on('message', (topic, p) => got.push({ topic, body: JSON.parse(p.toString()) }))
  await c.subscribeAsync(filter, { qos: 1 }).catch(() => undefined)
  return got
}

describe.each(brokerKinds)('offline journal replay on the %s broker', (kind) => {
  it('answers by transaction (kept, duplicate, invalid) and keeps the answer to the asking node', async () => {
    const mesh = await createMesh(kind)
    const kitchen = await mesh.client('kitchen')
    const answers = await collect(kitchen, `${BASE}/nodes/kitchen/response/replay`)
    // Node a tries to read kitchen's answers (aedes refuses the SUBACK; Mosquitto grants it, delivers nothing).
    const snoop = await mesh.client('a')
    snoop.on('error', () => undefined)
    const snooped = await collect(snoop, `${BASE}/nodes/kitchen/response/replay`)

    await kitchen.publishAsync(`${BASE}/nodes/kitchen/request/replay`, request('tx-1', [turn('k1'), { id: 'bad', at: 'yesterday' }]), { qos: 1 })
    await waitFor(() => answers.length === 1, { what: 'answer to tx-1' })
    expect(answers[0]!.body).toMatchObject({ v: 1, transaction: 'tx-1', status: 'ok', data: { kept: ['k1'], duplicate: [], invalid: [{ id: 'bad' }] } })
    // The same turn again (a retry): answered as a duplicate, kept once.
    await kitchen.publishAsync(`${BASE}/nodes/kitchen/request/replay`, request('tx-2', [turn('k1')]), { qos: 1 })
    await waitFor(() => answers.length === 2, { what: 'answer to tx-2' })
    expect(answers[1]!.body).toMatchObject({ transaction: 'tx-2', status: 'ok', data: { kept: [], duplicate: ['k1'], invalid: [] } })

    // Node a asking under kitchen's id never reaches the hub (aedes also drops a's connection).
    const intruder = await mesh.client('a')
    intruder.on('error', () => undefined)
    await Promise.race([intruder.publishAsync(`${BASE}/nodes/kitchen/request/replay`, request('tx-forged', [turn('forged')]), { qos: 1 }).catch(() => undefined), sleep(1000)])
    intruder.end(true)
    // kitchen forging the hub's answer to itself is refused too.
    const forger = await mesh.client('kitchen')
    forger.on('error', () => undefined)
    await Promise.race([forger.publishAsync(`${BASE}/nodes/kitchen/response/replay`, JSON.stringify({ v: 1, ts: Date.now(), transaction: 'tx-self', status: 'ok', data: { kept: [], duplicate: [], invalid: [] } }), { qos: 1 }).catch(() => undefined), sleep(1000)])
    forger.end(true)
    // A last legit request: once answered, anything published before it has been seen.
    await kitchen.publishAsync(`${BASE}/nodes/kitchen/request/replay`, request('tx-3', [turn('k2')]), { qos: 1 })
    await waitFor(() => answers.some((a) => a.body.transaction === 'tx-3'), { what: 'answer to tx-3' })

    expect(answers.map((a) => a.body.transaction)).toEqual(['tx-1', 'tx-2', 'tx-3'])
    expect(snooped).toEqual([])
    const turns = (await mesh.hub.http('/api/offline-turns')).body.turns as { nodeId: string; id: string }[]
    expect(turns.map((t) => `${t.nodeId}/${t.id}`)).toEqual(['kitchen/k2', 'kitchen/k1'])
    expect(await mesh.metric('mirrormesh_offline_turns_total', { result: 'new' })).toBe(2)
    expect(await mesh.metric('mirrormesh_offline_turns_total', { result: 'duplicate' })).toBe(1)
    expect(await mesh.metric('mirrormesh_offline_turns_total', { result: 'invalid' })).toBe(1)
    kitchen.end(true)
    snoop.end(true)
  })
})

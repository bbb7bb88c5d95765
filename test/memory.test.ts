// Memory through the whole hub: text turns (HTTP and MQTT) reach the memory stage, a fact told
// to the kitchen mirror is recalled there after a hub restart, and never from the hall's mirror.
// No ASR model and no embedding model: recall is by shared words and near spellings.
import { afterEach, describe, expect, it } from 'vitest'
import { cli, killAll, waitFor } from './support/harness.js'
import { BASE, createMesh } from './support/mesh.js'

afterEach(async () => { await killAll() })

type Mesh = Awaited<ReturnType<typeof createMesh>>

/** A mirror as the hub sees it: retained online status and a heartbeat naming its room, every 500 ms. */
async function mirror(mesh: Mesh, id: string, room: string) {
  const client = await mesh.client(id)
  const events: Array<{ type: string; turnId: number; text?: string; kind?: string }> = []
  client.on('message', (topic, payload) => { if (topic.endsWith('/events')) events.push(JSON.parse(payload.toString())) })
  await client.subscribeAsync(`${BASE}/nodes/${id}/events`, { qos: 1 })
  let seq = 0
  const beat = () => client.publish(`${BASE}/nodes/${id}/heartbeat`, JSON.stringify({ v: 1, ts: Date.now(), seq: seq++, uptimeS: 1, cpuPct: null, memPct: null, rssMb: 50, temperatureC: null, versions: {}, mode: 'online', room }), { qos: 0 })
  await client.publishAsync(`${BASE}/nodes/${id}/status`, 'online', { qos: 1, retain: true })
  beat()
  const timer = setInterval(beat, 500)
  client.on('connect', () => void client.publishAsync(`${BASE}/nodes/${id}/status`, 'online', { qos: 1, retain: true }))
  await waitFor(async () => (await mesh.hub.node(id))?.room === room, { what: `${id} registered in ${room}` })
  return { client, events, stop: () => { clearInterval(timer); client.end(true) } }
}

async function typed(mesh: Mesh, node: string, text: string, user?: string) {
  const res = await fetch(`http://127.0.0.1:${mesh.hub.httpPort}/api/turns`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ node, text, ...(user ? { user } : {}) }), signal: AbortSignal.timeout(20_000),
  })
  return { status: res.status, body: await res.json() as { outcome: string; kind: string; reply: string; transcript: string; turnId: number; ttfaMs: number | null } }
}

describe('memory in the conversation', () => {
  it('remembers a fact told to the kitchen mirror across a hub restart, and keeps it from the hall', async () => {
    const mesh = await createMesh('embedded', { timeoutMs: 60_000 })
    const ready = await mesh.hub.http('/readyz')
    expect(ready.body.checks.memory).toBe(true)
    expect(ready.body.modes.memory).toMatch(/^embedded, keyword \+ hashed n-gram vectors \(no embedding model\)/)
    let kitchen = await mirror(mesh, 'kitchen', 'kitchen')
    let hall = await mirror(mesh, 'hall', 'hall')

    const told = await typed(mesh, 'kitchen', 'Remember that the keys are in the drawer')
    expect(told.status).toBe(200)
    expect(told.body).toMatchObject({ outcome: 'ok', kind: 'skill', reply: "Okay, I'll remember that the keys are in the drawer." })
    expect(told.body.ttfaMs).toEqual(expect.any(Number)) // spoken to the mirror (espeak-ng), as a voice turn would be
    // The mirror itself hears it as any turn: transcript and reply events on its topic.
    await waitFor(() => kitchen.events.some((e) => e.type === 'reply' && e.turnId === told.body.turnId), { what: 'reply event on the kitchen mirror' })
    expect(kitchen.events.find((e) => e.type === 'transcript' && e.turnId === told.body.turnId)?.text).toBe('Remember that the keys are in the drawer')

    // Skills still answer around memory.
    expect((await typed(mesh, 'kitchen', 'turn on the kitchen light')).body).toMatchObject({ kind: 'skill', reply: 'Turning on the kitchen light.' })

    kitchen.stop(); hall.stop()
    mesh.hub.kill('SIGTERM')
    await mesh.hub.exited
    await mesh.restartHub()
    kitchen = await mirror(mesh, 'kitchen', 'kitchen')
    hall = await mirror(mesh, 'hall', 'hall')

    expect((await typed(mesh, 'kitchen', 'where are my keys')).body).toMatchObject({ outcome: 'ok', kind: 'skill', reply: 'You told me the keys are in the drawer.' })
    // A near spelling: no word in common, the trigram vector still finds it.
    expect((await typed(mesh, 'kitchen', 'what did I tell you about the drawr')).body.reply).toBe('You told me the keys are in the drawer.')
    // Another room's mirror never gets it.
    expect((await typed(mesh, 'hall', 'where are my keys')).body.reply).toBe("I don't remember anything about keys.")

    // A text turn over MQTT, as the mirror's keyboard sends it: "forget that" drops the newest fact.
    await kitchen.client.publishAsync(`${BASE}/nodes/kitchen/turn/text`, JSON.stringify({ text: 'forget that' }), { qos: 1 })
    await waitFor(() => kitchen.events.find((e) => e.type === 'reply' && e.text?.startsWith("Okay, I've forgotten")), { what: 'forget reply over MQTT' })
    expect(kitchen.events.find((e) => e.type === 'reply' && e.text?.startsWith("Okay, I've forgotten"))?.text).toBe("Okay, I've forgotten that the keys are in the drawer.")
    expect((await typed(mesh, 'kitchen', 'where are my keys')).body.reply).toBe("I don't remember anything about keys.")

    // A named user's memory follows the user from mirror to mirror, and only with the name.
    expect((await typed(mesh, 'hall', 'remember that my bike is in the shed', 'Ana')).body.reply).toBe("Okay, I'll remember that your bike is in the shed.")
    expect((await typed(mesh, 'kitchen', 'where is my bike', 'Ana')).body.reply).toBe('You told me your bike is in the shed.')
    expect((await typed(mesh, 'kitchen', 'where is my bike')).body.reply).toBe("I don't remember anything about bike.")

    // The operator's view: every turn was stored under the room's key.
    const env = { MIRRORMESH_STATE_DIR: mesh.stateDir }
    const hub = ['--hub', `http://127.0.0.1:${mesh.hub.httpPort}`]
    const list = await cli(['memory', 'list', 'room:kitchen', '--json', ...hub], env)
    expect(list.code).toBe(0)
    const texts = (JSON.parse(list.stdout) as { memories: Array<{ kind: string; text: string }> }).memories.map((m) => `${m.kind}:${m.text}`)
    expect(texts).toContain('turn:where are my keys')
    expect(texts).toContain('turn:Remember that the keys are in the drawer') // stored before the restart
    expect(texts).not.toContain('fact:the keys are in the drawer') // forgotten
    const exported = await cli(['memory', 'export', 'user:ana', ...hub], env)
    expect(JSON.parse(exported.stdout).memories.map((m: { text: string }) => m.text)).toContain('my bike is in the shed')
    const forgot = await cli(['memory', 'forget', 'user:ana', '--all', ...hub], env)
    expect(forgot.stdout).toMatch(/^\d+ memor(y|ies) deleted from user:ana/)
    expect((await typed(mesh, 'kitchen', 'where is my bike', 'Ana')).body.reply).toBe("I don't remember anything about bike.")
    expect((await cli(['memory', 'forget', 'user:ana', ...hub], env)).code).toBe(2)

    // mirrormesh ask --typed goes the same way.
    const ask = await cli(['ask', '--typed', 'remember that the milk is off', '--node', 'kitchen', ...hub], env)
    expect(ask.code).toBe(0)
    expect(ask.stdout).toContain('"Okay, I\'ll remember that the milk is off." (skill)')

    // Metrics: recall latency observed, store size, no embedding fallbacks (no model to fail).
    expect(await mesh.metric('mirrormesh_memory_recall_seconds_count')).toBeGreaterThan(0)
    expect(await mesh.metric('mirrormesh_memory_store_size', { unit: 'memories' })).toBeGreaterThan(5)
    const status = await cli(['status', ...hub], env)
    expect(status.stdout).toMatch(/memory.*embedded, keyword \+ hashed n-gram vectors/)
    // Turns it cannot run are refused with a reason.
    expect(await typed(mesh, 'nobody', 'hello')).toMatchObject({ status: 404, body: { error: 'unknown_node' } })
    const empty = await fetch(`http://127.0.0.1:${mesh.hub.httpPort}/api/turns`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ node: 'kitchen', text: '   ' }) })
    expect(empty.status).toBe(400)
    expect((await mesh.hub.http('/api/memory/kitchen')).status).toBe(400) // not a key: room:kitchen
    kitchen.stop(); hall.stop()
  }, 120_000)
})

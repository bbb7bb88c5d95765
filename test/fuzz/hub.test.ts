// Hostile input at a real hub: a real node client (node `a`, its own credentials) publishes
// generated payloads (huge, binary, deeply nested, non-UTF-8, wrong shapes) on every topic
// it may publish and the hub subscribes to; then raw TCP sockets send malformed MQTT
// packets at the broker. Meanwhile a real agent (`hall`) keeps heartbeating. The hub must
// not crash, must count every rejection, and must keep serving `hall`. An oversized publish is
// refused by the broker itself (counted in mirrormesh_broker_oversized_total, the client
// disconnected); the fuzzing client reconnects and goes on.
import { readFileSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import fc from 'fast-check'
import mqtt from 'mqtt'
import { afterEach, describe, expect, it } from 'vitest'
import { decode, topicFor, type TopicName } from '@mirrormesh/broker'
import { killAll, sleep, startAgent, waitFor } from '../support/harness.js'
import { BASE, createMesh, metricValue, type Mesh } from '../support/mesh.js'
import { fuzzParams, hostilePayload } from '../support/fuzz.js'

afterEach(async () => { await killAll() })

/** VmRSS of a process in MB (what `npm run fuzz` prints before and after). */
const rssMb = (pid: number | undefined): number => Math.round(Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) / 1024)

/** Topics a node may publish under its own id that the hub subscribes to. */
const TOPICS: TopicName[] = ['nodeHeartbeat', 'nodeStatus', 'nodePresence', 'nodeEvents', 'nodeReplayRequest', 'nodeAudioIn']

/** Watches the hub's view of `hall`: the longest time its heartbeat seq did not move. */
function watchLegit(mesh: Mesh) {
  let lastSeq: number | null = null
  let lastChange = Date.now()
  let maxGapMs = 0
  let running = true
  const loop = (async () => {
    while (running) {
      const n = await mesh.hub.node('hall').catch(() => null)
      const now = Date.now()
      if (n && n.seq !== lastSeq) { lastSeq = n.seq; lastChange = now }
      maxGapMs = Math.max(maxGapMs, now - lastChange)
      await sleep(100)
    }
  })()
  return { async stop() { running = false; await loop; return { maxGapMs, lastSeq } } }
}

async function legitMesh() {
  const mesh = await createMesh('embedded')
  const hall = await startAgent({ nodeId: 'hall', mqttUrl: mesh.url, password: mesh.passwords.hall })
  await hall.waitState('online')
  await mesh.waitNode('hall', 'online')
  return { mesh, hall }
}

describe('hostile payloads at a real hub', () => {
  it('generated payloads on every node topic: no crash, every rejection counted, the legit node served throughout', { timeout: 300_000 }, async () => {
    const { mesh, hall } = await legitMesh()
    const rejectedBefore = await mesh.metric('mirrormesh_payload_rejected_total')
    const rss0 = rssMb(mesh.hub.proc.pid)
    const oversizedBefore = await mesh.metric('mirrormesh_broker_oversized_total')
    // The broker refuses a publish over the topic's maxBytes and closes the connection (as for an
    // ACL denial); the fuzzing client then reconnects and goes on, as a misbehaving device would.
    const connectAttacker = () => mqtt.connectAsync(mesh.url, { clientId: 'node-a/fuzz', username: 'a', password: mesh.passwords.a, reconnectPeriod: 0, connectTimeout: 5000, protocolVersion: 4 })
    let attacker = await connectAttacker()
    const watch = watchLegit(mesh)
    const expected = { rejected: 0, oversized: 0, delivered: 0, reconnects: 0 }
    const publish = (topic: string, payload: Buffer) => Promise.race([
      attacker.publishAsync(topic, payload, { qos: 1 }).then(() => true, () => false),
      new Promise<false>((resolve) => attacker.once('close', () => resolve(false))),
      sleep(10_000).then(() => 'timeout' as const),
    ])
    await fc.assert(fc.asyncProperty(fc.constantFrom(...TOPICS), hostilePayload, async (name, payload) => {
      const topic = topicFor(BASE, name, { node: 'a' })
      const res = decode(BASE, topic, payload)
      if (!attacker.connected) {
        // A fresh client: mqtt.js would resend the refused QoS 1 publish on its own reconnect.
        attacker.end(true)
        attacker = await connectAttacker()
        expected.reconnects++
      }
      const sent = await publish(topic, payload)
      if (!res.ok && res.reason === 'too_large') {
        // Over the contract's size: refused by the broker, never delivered.
        expect(sent, `${payload.length} bytes on ${name} (maxBytes exceeded) not refused by the broker`).toBe(false)
        expected.oversized++
        return
      }
      expect(sent, `a ${payload.length}-byte publish on ${name} within maxBytes was not acknowledged`).toBe(true)
      expected.delivered++
      if (!res.ok) expected.rejected++
    }), fuzzParams(0.5))
    attacker.end(true)
    // QoS 1 acks come from the broker; give the hub a moment to have handled everything.
    const text = async () => String((await mesh.hub.http('/metrics')).body)
    await waitFor(async () => metricValue(await text(), 'mirrormesh_payload_rejected_total') - rejectedBefore >= expected.rejected, { timeoutMs: 20_000, what: `${expected.rejected} schema/JSON rejections counted` })
    const m = await text()
    const schemaOrJson = metricValue(m, 'mirrormesh_payload_rejected_total', { reason: 'schema' }) + metricValue(m, 'mirrormesh_payload_rejected_total', { reason: 'not_json' })
    const oversizedCounted = metricValue(m, 'mirrormesh_broker_oversized_total') - oversizedBefore
    const hubTooLarge = metricValue(m, 'mirrormesh_payload_rejected_total', { reason: 'too_large' })
    const { maxGapMs } = await watch.stop()
    console.log(`hub fuzz: ${JSON.stringify(expected)}; counted at the hub schema/json ${schemaOrJson}, too_large ${hubTooLarge}; refused at the broker as oversized ${oversizedCounted}; legit heartbeat max gap ${maxGapMs} ms; hub RSS ${rss0} → ${rssMb(mesh.hub.proc.pid)} MB`)

    expect(schemaOrJson - rejectedBefore).toBeGreaterThanOrEqual(expected.rejected)
    // Every oversized publish was stopped and counted by the broker; none reached the hub's validator.
    expect(oversizedCounted).toBe(expected.oversized)
    expect(hubTooLarge).toBe(0)
    expect(mesh.hub.proc.exitCode).toBeNull()
    expect((await mesh.hub.http('/healthz')).status).toBe(200)
    // The legit node never went stale (NODE_STALE_MS is 3000) and is online now.
    expect(maxGapMs).toBeLessThan(3000)
    expect((await mesh.hub.node('hall')).state).toBe('online')
    expect((await hall.health()).state).toBe('online')
  })
})

// --- raw MQTT packets ---

/** MQTT variable-length integer. */
const varint = (n: number): Buffer => {
  const out: number[] = []
  do { let b = n % 128; n = Math.floor(n / 128); if (n > 0) b |= 0x80; out.push(b) } while (n > 0)
  return Buffer.from(out)
}
const str = (s: string | Buffer): Buffer => { const b = Buffer.isBuffer(s) ? s : Buffer.from(s); const l = Buffer.alloc(2); l.writeUInt16BE(b.length); return Buffer.concat([l, b]) }
const packet = (type: number, flags: number, body: Buffer): Buffer => Buffer.concat([Buffer.from([(type << 4) | flags]), varint(body.length), body])
const connectPkt = (level: number, clientId: string, user?: string, pass?: string, name = 'MQTT') => {
  const flags = (user ? 0x80 : 0) | (pass ? 0x40 : 0) | 0x02
  return packet(1, 0, Buffer.concat([str(name), Buffer.from([level, flags, 0, 30]), str(clientId), ...(user ? [str(user)] : []), ...(pass ? [str(pass)] : [])]))
}

/** Malformed and out-of-order packets. */
const rawPacket = (mesh: Mesh): fc.Arbitrary<Buffer> => fc.oneof(
  fc.uint8Array({ minLength: 1, maxLength: 300 }).map((a) => Buffer.from(a)),
  // Wrong protocol versions and names.
  fc.tuple(fc.integer({ min: 0, max: 255 }), fc.constantFrom('MQTT', 'MQIsdp', 'XXXX', '')).map(([lvl, name]) => connectPkt(lvl, 'raw-x', 'a', mesh.passwords.a, name)),
  // A remaining length that lies (too long, too short, a 5-byte varint).
  fc.tuple(fc.integer({ min: 0, max: 15 }), fc.uint8Array({ maxLength: 64 }), fc.integer({ min: 0, max: 268_435_455 })).map(([t, body, claimed]) => Buffer.concat([Buffer.from([t << 4]), varint(claimed), Buffer.from(body)])),
  fc.uint8Array({ maxLength: 32 }).map((a) => Buffer.concat([Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x7f]), Buffer.from(a)])),
  // PUBLISH / SUBSCRIBE / PINGREQ before CONNECT.
  fc.uint8Array({ maxLength: 64 }).map((a) => packet(3, 2, Buffer.concat([str(`${BASE}/nodes/a/heartbeat`), Buffer.from([0, 1]), Buffer.from(a)]))),
  fc.constant(packet(8, 2, Buffer.concat([Buffer.from([0, 1]), str('#'), Buffer.from([1])]))),
  fc.constant(packet(12, 0, Buffer.alloc(0))),
  // A good CONNECT, then garbage: a second CONNECT, reserved type 0/15, a topic with NUL / bad UTF-8.
  fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.concat([connectPkt(4, 'node-a/raw', 'a', mesh.passwords.a), connectPkt(4, 'node-a/raw2', 'a', mesh.passwords.a), packet(0, 0, Buffer.from(a)), packet(15, 0, Buffer.from(a))])),
  fc.constantFrom(Buffer.from([0x00, 0xd8, 0xff]), Buffer.from('mirrormesh/\u0000/x'), Buffer.from([0xc0, 0xaf])).map((topic) =>
    Buffer.concat([connectPkt(4, 'node-a/raw3', 'a', mesh.passwords.a), packet(3, 0, Buffer.concat([str(topic), Buffer.from('{}')])), packet(8, 2, Buffer.concat([Buffer.from([0, 2]), str(topic), Buffer.from([0])]))])),
)

function sendRaw(port: number, data: Buffer): Promise<void> {
  return new Promise((resolve) => {
    const s: Socket = connect(port, '127.0.0.1', () => { s.write(data); setTimeout(() => s.destroy(), 50) })
    s.on('error', () => undefined)
    s.on('close', () => resolve())
    s.setTimeout(3000, () => s.destroy())
  })
}

describe('raw MQTT packets at the broker', () => {
  it('malformed lengths, wrong order, wrong protocol versions: no crash, the legit node served', { timeout: 300_000 }, async () => {
    const { mesh, hall } = await legitMesh()
    const watch = watchLegit(mesh)
    const rss0 = rssMb(mesh.hub.proc.pid)
    let sent = 0
    await fc.assert(fc.asyncProperty(fc.array(rawPacket(mesh), { minLength: 1, maxLength: 4 }), async (pkts) => {
      await sendRaw(mesh.hub.mqttPort, Buffer.concat(pkts))
      sent++
    }), fuzzParams(0.5))
    // A client still gets in and is served after all that.
    const probe = await mesh.client('b')
    await probe.publishAsync(`${BASE}/nodes/b/probe`, 'ping', { qos: 1 })
    probe.end(true)
    const { maxGapMs } = await watch.stop()
    console.log(`raw packets: ${sent} connections of malformed packets; legit heartbeat max gap ${maxGapMs} ms; hub RSS ${rss0} → ${rssMb(mesh.hub.proc.pid)} MB`)
    expect(mesh.hub.proc.exitCode).toBeNull()
    expect((await mesh.hub.http('/healthz')).status).toBe(200)
    expect(maxGapMs).toBeLessThan(3000)
    expect((await mesh.hub.node('hall')).state).toBe('online')
    expect((await hall.health()).state).toBe('online')
  })
})

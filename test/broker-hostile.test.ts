// Hostile input against the embedded broker, on every listener (TCP, WebSocket, TLS): client-id
// pinning per role, the contract's size limits, a packet-size limit before and after
// authentication, and retained QoS 1 messages that must all arrive and survive a restart.
// Real broker on loopback ports, real mqtt.js clients and raw sockets.
import { execFileSync } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { connect as netConnect, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect as tlsConnect } from 'node:tls'
import mqtt, { type MqttClient } from 'mqtt'
import { Registry } from 'prom-client'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import WebSocket, { createWebSocketStream } from 'ws'
import { CredentialStore, createLogger } from '@mirrormesh/broker'
import { EmbeddedBroker } from '@mirrormesh/broker/server'
import { waitFor } from './support/kit.js'

const BASE = 'mirrormesh'
const HUB_PASSWORD = 'in-process-secret-0123456789'
let dir: string
let store: CredentialStore
const pw: Record<string, string> = {}
let certPath: string
let keyPath: string

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mm-hostile-'))
  store = new CredentialStore(join(dir, 'credentials.json'))
  for (const id of ['a', 'b']) pw[id] = await store.add(id, 'node', { cost: 1024 })
  pw.dash = await store.add('dash', 'observer', { cost: 1024 })
  certPath = join(dir, 'cert.pem')
  keyPath = join(dir, 'key.pem')
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyPath, '-out', certPath, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' })
})
afterAll(async () => { await rm(dir, { recursive: true, force: true }) })

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) {
    try { await fn() } catch { /* already closed */ }
  }
})

interface Started { broker: EmbeddedBroker; registry: Registry; urls: Record<'tcp' | 'ws' | 'tls', string> }

async function startBroker(persistenceDir?: string): Promise<Started> {
  const registry = new Registry()
  const broker = new EmbeddedBroker({
    base: BASE, host: '127.0.0.1', port: 0, wsPort: 0, tls: { port: 0, certPath, keyPath }, persistenceDir,
    credentials: store, internalUsers: [{ username: 'hub-main', password: HUB_PASSWORD, role: 'hub' }],
    registry, log: createLogger({ name: 'test', level: 'silent' }),
  })
  const a = await broker.start()
  cleanups.push(() => broker.stop())
  return { broker, registry, urls: { tcp: `mqtt://127.0.0.1:${a.port}`, ws: `ws://127.0.0.1:${a.wsPort}`, tls: `mqtts://127.0.0.1:${a.tlsPort}` } }
}

async function client(url: string, username: string, password: string, clientId: string, extra: mqtt.IClientOptions = {}): Promise<MqttClient> {
  const c = await mqtt.connectAsync(url, { username, password, clientId, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000, ca: undefined, rejectUnauthorized: false, ...extra })
  c.on('error', () => undefined)
  cleanups.push(() => c.endAsync(true))
  return c
}

const closed = (c: MqttClient) => new Promise<void>((r) => (c.disconnected ? r() : c.once('close', () => r())))

// --- raw MQTT bytes, for what mqtt.js will not send --------------------------------------
const str = (s: string) => { const b = Buffer.from(s); return Buffer.concat([Buffer.from([b.length >> 8, b.length & 255]), b]) }
function remainingLength(n: number): Buffer {
  const out: number[] = []
  do { let d = n % 128; n = Math.floor(n / 128); if (n > 0) d |= 128; out.push(d) } while (n > 0)
  return Buffer.from(out)
}
function connectPacket(o: { clientId: string; username: string; password: string; clean: boolean }): Buffer {
  const flags = 0x80 | 0x40 | (o.clean ? 0x02 : 0)
  const body = Buffer.concat([str('MQTT'), Buffer.from([4, flags, 0, 30]), str(o.clientId), str(o.username), str(o.password)])
  return Buffer.concat([Buffer.from([0x10]), remainingLength(body.length), body])
}

type Raw = { write(b: Buffer): boolean; closed: Promise<void>; data: Buffer[]; destroy(): void }
async function raw(kind: 'tcp' | 'ws' | 'tls', urls: Started['urls']): Promise<Raw> {
  const port = Number(new URL(urls[kind]).port)
  let stream: NodeJS.ReadWriteStream & { destroy(): void; on(e: string, f: (...a: unknown[]) => void): unknown }
  if (kind === 'ws') {
    const ws = new WebSocket(urls.ws, 'mqtt')
    await new Promise((res, rej) => { ws.once('open', res); ws.once('error', rej) })
    stream = createWebSocketStream(ws) as never
  } else {
    const s: Socket = kind === 'tcp' ? netConnect(port, '127.0.0.1') : tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false })
    await new Promise((res, rej) => { s.once(kind === 'tcp' ? 'connect' : 'secureConnect', res); s.once('error', rej) })
    stream = s as never
  }
  const data: Buffer[] = []
  stream.on('data', (d) => data.push(d as Buffer))
  stream.on('error', () => undefined)
  const closedP = new Promise<void>((r) => { stream.on('close', () => r()); stream.on('end', () => r()) })
  cleanups.push(() => stream.destroy())
  return { write: (b) => stream.write(b), closed: closedP, data, destroy: () => stream.destroy() }
}
const within = <T>(p: Promise<T>, ms: number) => Promise.race([p.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))])

describe.each(['tcp', 'ws', 'tls'] as const)('every role pinned to its client ids (%s)', (kind) => {
  it("an observer cannot take the hub's or a node's client id; the hub and node stay connected", async () => {
    const s = await startBroker()
    const hub = await client(s.urls[kind], 'hub-main', HUB_PASSWORD, 'hub-main')
    const node = await client(s.urls[kind], 'a', pw.a!, 'node-a')
    for (const id of ['hub-main', 'node-a', 'hub-main/x', 'node-b']) {
      await expect(client(s.urls[kind], 'dash', pw.dash!, id)).rejects.toThrow(/not authori[sz]ed|identifier/i)
    }
    // A node's credentials cannot take the hub's id either.
    await expect(client(s.urls[kind], 'a', pw.a!, 'hub-main')).rejects.toThrow(/not authori[sz]ed/i)
    expect(hub.connected).toBe(true)
    expect(node.connected).toBe(true)
    // The observer's own ids still work.
    expect((await client(s.urls[kind], 'dash', pw.dash!, 'dash-ui')).connected).toBe(true)
    expect((await client(s.urls[kind], 'dash', pw.dash!, 'observer-dash/ha')).connected).toBe(true)
  })

  it('an empty client id with a persistent session is refused (MQTT-3.1.3-8), with a clean one accepted for an observer', async () => {
    const s = await startBroker()
    const r = await raw(kind, s.urls)
    r.write(connectPacket({ clientId: '', username: 'dash', password: pw.dash!, clean: false }))
    expect(await within(r.closed, 5000)).toBe(true)
    const connack = Buffer.concat(r.data)
    expect(connack[0]).toBe(0x20)
    expect(connack[3]).toBe(2) // identifier rejected
    const ok = await raw(kind, s.urls)
    ok.write(connectPacket({ clientId: '', username: 'dash', password: pw.dash!, clean: true }))
    await waitFor(() => ok.data.length > 0, { what: 'CONNACK' })
    expect(Buffer.concat(ok.data)[3]).toBe(0)
  })

  it('a packet announcing 256 MB is cut off before authentication; the server does not buffer it', async () => {
    const s = await startBroker()
    const r = await raw(kind, s.urls)
    r.write(Buffer.concat([Buffer.from([0x10]), remainingLength(256 * 1024 * 1024 - 1)]))
    for (let i = 0; i < 16 && !r.data.length; i++) r.write(Buffer.alloc(64 * 1024, 1))
    expect(await within(r.closed, 5000)).toBe(true)
  })

  it('after authentication a packet larger than the contract allows closes the connection', async () => {
    const s = await startBroker()
    const node = await client(s.urls[kind], 'a', pw.a!, 'node-a')
    node.publish(`${BASE}/nodes/a/audio/in`, Buffer.alloc(1024 * 1024), { qos: 0 })
    expect(await within(closed(node), 5000)).toBe(true)
    // 64 KB audio frames, the contract's largest node payload, still pass.
    const again = await client(s.urls[kind], 'a', pw.a!, 'node-a/2')
    await again.publishAsync(`${BASE}/nodes/a/events`, Buffer.alloc(60_000, 0x20), { qos: 1 })
    expect(again.connected).toBe(true)
  })

  it('a full audio frame sent the moment CONNACK arrives passes, with the session replayed from disk', async () => {
    const persist = await mkdtemp(join(tmpdir(), 'mm-hostile-connack-'))
    cleanups.push(() => rm(persist, { recursive: true, force: true }))
    const s = await startBroker(persist)
    const dash = await client(s.urls.tcp, 'dash', pw.dash!, 'dash-connack')
    let frames = 0
    dash.on('message', () => frames++)
    await dash.subscribeAsync(`${BASE}/nodes/a/audio/in`)
    // aedes sends CONNACK, then replays the stored session, then marks the client connected.
    const frame = Buffer.alloc(65_536, 0x11)
    for (let i = 0; i < 5; i++) {
      const c = mqtt.connect(s.urls[kind], { username: 'a', password: pw.a!, clientId: 'node-a', clean: false, protocolVersion: 4, reconnectPeriod: 0, rejectUnauthorized: false })
      c.on('error', () => undefined)
      let cut = false
      c.on('close', () => { cut = true })
      cleanups.push(() => c.endAsync(true))
      await new Promise<void>((resolve, reject) => {
        c.once('connect', () => { c.publish(`${BASE}/nodes/a/audio/in`, frame, { qos: 0 }); resolve() })
        c.once('close', () => reject(new Error('closed before CONNACK')))
      })
      await waitFor(() => frames === i + 1 || cut, { what: `frame ${i + 1} or a cut-off` })
      expect(cut).toBe(false)
      await c.endAsync()
    }
    expect(frames).toBe(5)
  })
})

describe("the contract's size limits, enforced by the broker", () => {
  it('an oversized heartbeat and an oversized retained status are not forwarded, not stored, and counted', async () => {
    const s = await startBroker(join(dir, `db-${Date.now()}`))
    const watcher = await client(s.urls.tcp, 'dash', pw.dash!, 'dash-w')
    const seen: string[] = []
    watcher.on('message', (topic, p) => seen.push(`${topic}:${p.length}`))
    await watcher.subscribeAsync(`${BASE}/#`, { qos: 1 })
    const node = await client(s.urls.tcp, 'a', pw.a!, 'node-a')
    node.publish(`${BASE}/nodes/a/heartbeat`, Buffer.alloc(8192, 0x20), { qos: 0 })
    const node2 = await client(s.urls.tcp, 'a', pw.a!, 'node-a/2')
    node2.publish(`${BASE}/nodes/a/status`, Buffer.alloc(1024, 0x41), { qos: 1, retain: true })
    const node3 = await client(s.urls.tcp, 'a', pw.a!, 'node-a/3')
    await node3.publishAsync(`${BASE}/nodes/a/probe`, 'sentinel', { qos: 1 })
    await waitFor(() => seen.some((m) => m.startsWith(`${BASE}/nodes/a/probe`)), { what: 'the sentinel' })
    expect(seen.filter((m) => !m.includes('/probe'))).toEqual([])
    const late = await client(s.urls.tcp, 'dash', pw.dash!, 'dash-late')
    const retained: string[] = []
    late.on('message', (topic) => retained.push(topic))
    await late.subscribeAsync(`${BASE}/nodes/a/status`, { qos: 1 })
    await new Promise((r) => setTimeout(r, 300))
    expect(retained).toEqual([])
    const metric = await s.registry.getSingleMetric('mirrormesh_broker_oversized_total')?.get()
    expect(metric?.values.reduce((n, v) => n + v.value, 0)).toBe(2)
  })

  it('memory: 4 sockets announcing 256 MB each before authentication (figure printed)', async () => {
    const s = await startBroker()
    global.gc?.()
    const before = process.memoryUsage().rss
    const socks = await Promise.all([0, 1, 2, 3].map(() => raw('tcp', s.urls)))
    const chunk = Buffer.alloc(1024 * 1024, 1)
    await Promise.all(socks.map(async (r) => {
      r.write(Buffer.concat([Buffer.from([0x30]), remainingLength(256 * 1024 * 1024 - 1)]))
      for (let i = 0; i < 32; i++) {
        if (!r.write(chunk)) await new Promise((res) => setTimeout(res, 5))
        if (await within(r.closed, 0)) break
      }
    }))
    const allClosed = await within(Promise.all(socks.map((r) => r.closed)), 5000)
    const after = process.memoryUsage().rss
    console.log(`[bench] broker RSS growth with 4 sockets announcing 256 MB (32 MB sent each): ${((after - before) / 1e6).toFixed(1)} MB; all cut off: ${allClosed}`)
    expect(allClosed).toBe(true)
  })
})

describe('retained QoS 1 messages: all delivered, the last one kept across a restart', () => {
  it('2,000 retained publishes reach every subscriber, and the last value survives a restart', async () => {
    const db = join(dir, `db-retained-${Date.now()}`)
    let s = await startBroker(db)
    const counts = { hub: 0, dash: 0 }
    const hub = await client(s.urls.tcp, 'hub-main', HUB_PASSWORD, 'hub-main')
    const dash = await client(s.urls.ws, 'dash', pw.dash!, 'dash-count')
    hub.on('message', (t) => { if (t.endsWith('/status')) counts.hub++ })
    dash.on('message', (t) => { if (t.endsWith('/status')) counts.dash++ })
    await hub.subscribeAsync(`${BASE}/nodes/+/status`, { qos: 1 })
    await dash.subscribeAsync(`${BASE}/nodes/#`, { qos: 1 })
    const node = await client(s.urls.tcp, 'a', pw.a!, 'node-a')
    const n = 2000
    const sends: Promise<unknown>[] = []
    for (let i = 0; i < n; i++) {
      sends.push(node.publishAsync(`${BASE}/nodes/a/status`, `s${i}`, { qos: 1, retain: true }))
      // Interleaved QoS 0 heartbeats: a later QoS 0 message must not make an earlier QoS 1 one look like a duplicate.
      if (i % 10 === 0) node.publish(`${BASE}/nodes/a/heartbeat`, '{}', { qos: 0 })
    }
    await Promise.all(sends)
    await waitFor(() => counts.hub >= n && counts.dash >= n, { timeoutMs: 20_000, what: 'every retained message' }).catch(() => undefined)
    console.log(`[retained] delivered of ${n}: hub ${counts.hub}, observer ${counts.dash}`)
    expect(counts).toEqual({ hub: n, dash: n })
    await s.broker.stop()
    s = await startBroker(db)
    const late = await client(s.urls.tcp, 'dash', pw.dash!, 'dash-late')
    const got: string[] = []
    late.on('message', (_t, p) => got.push(p.toString()))
    await late.subscribeAsync(`${BASE}/nodes/a/status`, { qos: 1 })
    await waitFor(() => got.length > 0, { what: 'the retained status after restart' })
    expect(got).toEqual([`s${n - 1}`])
  })
})

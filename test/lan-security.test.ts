// The hub on a LAN, as shipped: a certificate from `mirrormesh tls init`, MQTT/TLS and HTTPS on
// the "LAN" listeners (bound to 127.0.0.1 here: tests never bind beyond loopback, and the rule
// keys on the listener's role, not its address), plain MQTT and HTTP on loopback for local tools.
// Real hub and agent processes; the node's bundle fetch (BundleStore + hubFetch) runs in-process
// against the real hub so its result and log lines can be read.
import { readFile } from 'node:fs/promises'
import { request } from 'node:https'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createLogger } from '@mirrormesh/broker'
import { BundleStore } from '../node-agent/src/offline/bundle-store.js'
import { hubFetch } from '../node-agent/src/offline/hub-fetch.js'
import { addNode, cli, freePorts, killAll, removeDir, startAgent, startHub, tempDir, waitFor, type AgentProc, type HubProc } from './support/harness.js'

interface Reply { status: number; body: any; text: string; headers: Record<string, unknown> } // eslint-disable-line @typescript-eslint/no-explicit-any -- JSON of any route

let dir: string
let tlsDir: string
let ca: Buffer
let hub: HubProc
let httpsPort: number
let tlsPort: number
let adminToken: string
let kitchenPassword: string
let observerPassword: string
const agents: AgentProc[] = []
const outputs: string[] = []

/** A request to the hub's HTTPS listener, trusting `ca` (or not, with ca: null). */
function https(path: string, opts: { method?: string; auth?: string; ca?: Buffer | null; host?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({
      host: '127.0.0.1', servername: opts.host ?? 'localhost', port: httpsPort, path, method: opts.method ?? 'GET',
      ...(opts.ca === null ? {} : { ca: opts.ca ?? ca }),
      headers: opts.auth ? { authorization: opts.auth } : {},
      signal: AbortSignal.timeout(5000),
    }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        let body: unknown
        try { body = JSON.parse(text) } catch { body = text }
        resolve({ status: res.statusCode ?? 0, body, text, headers: res.headers })
      })
    })
    req.on('error', reject)
    req.end()
  })
}

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`

function capture() {
  const lines: Array<{ level: number; msg: string; [k: string]: unknown }> = []
  const dest = new Writable({ write(chunk: Buffer, _e, cb) { lines.push(JSON.parse(chunk.toString())); cb() } })
  return { log: createLogger({ name: 'agent', level: 'debug', destination: dest }), lines }
}

beforeAll(async () => {
  dir = await tempDir('mm-lan-')
  tlsDir = join(dir, 'tls')
  const init = await cli(['tls', 'init', '--dir', tlsDir, '--name', 'localhost', '--ip', '127.0.0.1'])
  expect(init.code, init.stderr).toBe(0)
  outputs.push(init.stdout, init.stderr)
  ca = await readFile(join(tlsDir, 'ca.pem'))
  ;[httpsPort, tlsPort] = (await freePorts(2)) as [number, number]
  kitchenPassword = await addNode(dir, 'kitchen')
  observerPassword = await addNode(dir, 'dash', 'observer')
  hub = await startHub({
    stateDir: dir,
    env: {
      MQTT_TLS_CERT: join(tlsDir, 'hub.pem'), MQTT_TLS_KEY: join(tlsDir, 'hub-key.pem'),
      MQTT_TLS_HOST: '127.0.0.1', MQTT_TLS_PORT: String(tlsPort),
      HTTPS_HOST: '127.0.0.1', HTTPS_PORT: String(httpsPort),
      AUTH_FAILURES_PER_MINUTE: '20',
      BUNDLE_ENABLED: 'true', ROOMS: 'kitchen',
    },
  })
  adminToken = (await readFile(join(dir, 'admin-token'), 'utf8')).trim()
}, 60_000)

afterAll(async () => {
  await killAll()
  if (dir) await removeDir(dir)
})

describe('hub on the LAN: TLS, admin token, node credentials', () => {
  it('creates the admin token 0600 at start; a stranger cannot drain, delete stats or list nodes; /metrics, /healthz, /readyz stay open', async () => {
    const { stat } = await import('node:fs/promises')
    expect((await stat(join(dir, 'admin-token'))).mode & 0o777).toBe(0o600)
    expect(adminToken).toMatch(/^[A-Za-z0-9_-]{43}$/)

    const drain = await https('/api/drain', { method: 'POST' })
    expect(drain.status).toBe(401)
    expect(drain.headers['www-authenticate']).toMatch(/^Bearer/)
    expect(drain.body.message).toMatch(/admin token required/)
    expect((await https('/api/stats/heartbeats', { method: 'DELETE', auth: 'Bearer not-the-token' })).status).toBe(401)
    expect((await https('/api/nodes')).status).toBe(401)
    // A node's own credential is for the bundle only.
    expect((await https('/api/nodes', { auth: basic('kitchen', kitchenPassword) })).status).toBe(401)
    // Still serving and ready: the refused drain did nothing.
    expect((await https('/readyz')).status).toBe(200)
    expect((await https('/healthz')).status).toBe(200)
    expect((await hub.http('/readyz')).status).toBe(200)
    const metrics = await https('/metrics')
    expect(metrics.status).toBe(200)
    expect(metrics.text).toMatch(/mirrormesh_http_auth_failures_total\{kind="token"\} [1-9]/)
  })

  it('with the token the same routes work over HTTPS; the loopback listener needs none', async () => {
    const auth = `Bearer ${adminToken}`
    expect((await https('/api/nodes', { auth })).status).toBe(200)
    const del = await https('/api/stats/heartbeats', { method: 'DELETE', auth })
    expect(del.status).toBeLessThan(300)
    expect((await hub.http('/api/nodes')).status).toBe(200)
  })

  it('HTTPS refuses a client that does not trust the hub CA', async () => {
    await expect(https('/healthz', { ca: null })).rejects.toThrow(/self[- ]signed|unable to verify/i)
  })

  it('the bundle: 401 without or with a wrong node credential (the node logs why and keeps none), 200 with the right one over HTTPS with the CA', { timeout: 90_000 }, async () => {
    // The hub builds its first bundle in the background (espeak-ng; seconds on two cores).
    const manifest = await waitFor(async () => {
      const r = await hub.http('/api/bundle/manifest')
      return r.status === 200 && r.body as { version: string }
    }, { timeoutMs: 80_000, what: 'the hub\'s first offline bundle' })
    const path = `/api/bundle/${manifest.version}/manifest.json`

    expect((await https(path)).status).toBe(401)
    const wrong = await https(path, { auth: basic('kitchen', 'not-the-password') })
    expect(wrong.status).toBe(401)
    expect(wrong.headers['www-authenticate']).toMatch(/^Basic/)
    expect((await https(path, { auth: basic('dash', observerPassword) })).status).toBe(401) // an observer is not a node
    expect((await https(path, { auth: basic('kitchen', kitchenPassword) })).status).toBe(200)
    expect((await https(path, { auth: `Bearer ${adminToken}` })).status).toBe(200)

    const sha256 = (await import('node:crypto')).createHash('sha256').update((await https(path, { auth: basic('kitchen', kitchenPassword) })).text).digest('hex')
    const announcement = { version: manifest.version, sha256, url: path }
    const hubUrl = `https://localhost:${httpsPort}`

    // What the agent does with its settings (offline/hub-fetch.ts), in-process so we can read its log.
    const bad = capture()
    const badStore = await BundleStore.open(join(dir, 'node-bad'), bad.log)
    const refused = await badStore.sync(announcement, hubUrl, hubFetch({ ca, username: 'kitchen', password: 'not-the-password' }))
    expect(refused.status).toBe('failed')
    expect(badStore.current()).toBeUndefined()
    const line = bad.lines.find((l) => l.level >= 50)
    expect(line?.msg).toMatch(/HTTP 401: the hub refused this node's credentials .*keeping none/)

    const noCa = capture()
    const noCaResult = await (await BundleStore.open(join(dir, 'node-noca'), noCa.log)).sync(announcement, hubUrl, hubFetch({ username: 'kitchen', password: kitchenPassword }))
    expect(noCaResult.status).toBe('failed')
    expect(noCa.lines.map((l) => l.msg).join('\n')).toMatch(/not trusted .*set MQTT_CA/)

    const good = capture()
    const store = await BundleStore.open(join(dir, 'node-good'), good.log)
    const ok = await store.sync(announcement, hubUrl, hubFetch({ ca, username: 'kitchen', password: kitchenPassword }))
    expect(ok.status).toBe('installed')
    expect(store.current()?.manifest.version).toBe(manifest.version)
    // A later refusal keeps the bundle the node has.
    const again = await store.sync({ ...announcement, version: 'v-next' }, hubUrl, hubFetch({ ca, username: 'kitchen', password: 'stale' }))
    expect(again.status).toBe('failed')
    expect(store.current()?.manifest.version).toBe(manifest.version)
    outputs.push(...[bad, noCa, good].flatMap((c) => c.lines.map((l) => JSON.stringify(l))))
  })

  it('an agent with MQTT_CA connects over mqtts:// and installs the bundle from the announced HTTPS port; one without the CA is refused; plain mqtt:// on loopback still works', { timeout: 90_000 }, async () => {
    const caPath = join(tlsDir, 'ca.pem')
    const tlsAgent = await startAgent({
      nodeId: 'kitchen', mqttUrl: `mqtts://localhost:${tlsPort}`, password: kitchenPassword, stdin: true,
      env: { MQTT_CA: caPath, AUDIO_SOURCE: 'stdin', MIRRORMESH_STATE_DIR: join(dir, 'agent-kitchen') },
    })
    agents.push(tlsAgent)
    await waitFor(async () => (await hub.node('kitchen'))?.state === 'online', { timeoutMs: 20_000, what: 'kitchen online over mqtts' })
    await waitFor(() => /bundle \S+ installed/.test(tlsAgent.out.text), { timeoutMs: 60_000, what: 'the agent installing the bundle over HTTPS' })
    expect(tlsAgent.out.text).toContain(`"from":"https://localhost:${httpsPort}"`)

    const untrusting = await startAgent({
      nodeId: 'hall', mqttUrl: `mqtts://localhost:${tlsPort}`, password: await addNode(dir, 'hall'),
      env: { MIRRORMESH_STATE_DIR: join(dir, 'agent-hall') },
    })
    agents.push(untrusting)
    await waitFor(() => /self[- ]signed|unable to verify/i.test(untrusting.out.text), { timeoutMs: 15_000, what: 'the agent without MQTT_CA logging the refused certificate' })
    expect((await hub.node('hall'))?.state).not.toBe('online')

    const plain = await startAgent({
      nodeId: 'office', mqttUrl: hub.mqttUrl, password: await addNode(dir, 'office'),
      env: { MIRRORMESH_STATE_DIR: join(dir, 'agent-office') },
    })
    agents.push(plain)
    await waitFor(async () => (await hub.node('office'))?.state === 'online', { timeoutMs: 20_000, what: 'office online over plain mqtt on loopback' })
  })

  it('failed logins from one address are limited (429), the admin token still works, and no secret appears in any output', async () => {
    let limited: Reply | undefined
    for (let i = 0; i < 25 && !limited; i++) {
      const r = await https('/api/nodes', { auth: 'Bearer guess' })
      if (r.status === 429) limited = r
      else expect(r.status).toBe(401)
    }
    expect(limited?.headers['retry-after']).toMatch(/^\d+$/)
    expect((await https('/api/bundle/manifest', { auth: basic('kitchen', kitchenPassword) })).status).toBe(429)
    expect((await https('/api/nodes', { auth: `Bearer ${adminToken}` })).status).toBe(200)
    const metrics = (await https('/metrics')).text
    expect(metrics).toMatch(/mirrormesh_http_auth_failures_total\{kind="rate_limited"\} [1-9]/)
    expect(metrics).toMatch(/mirrormesh_http_auth_failures_total\{kind="node"\} [1-9]/)

    const keyBodies = await Promise.all(['hub-key.pem', 'ca-key.pem'].map(async (f) =>
      (await readFile(join(tlsDir, f), 'utf8')).split('\n').filter((l) => l && !l.startsWith('-----')).join('')))
    const everything = [hub.out.text, ...agents.map((a) => a.out.text), ...outputs, metrics].join('\n')
    for (const secret of [adminToken, kitchenPassword, observerPassword, ...keyBodies]) {
      expect(secret.length).toBeGreaterThan(16)
      expect(everything).not.toContain(secret)
      expect(everything).not.toContain(secret.slice(0, 24))
    }
    expect(everything).not.toContain('PRIVATE KEY')
  })

  it('with the token a drain starts; the hub says draining and stops', { timeout: 30_000 }, async () => {
    const r = await https('/api/drain', { method: 'POST', auth: `Bearer ${adminToken}` })
    expect(r.status).toBe(202)
    expect(r.body).toEqual({ status: 'draining' })
    const exit = await hub.exited
    expect(exit.code).toBe(0)
  })
})

// Browser pairing on the LAN, as shipped: the hub's HTTPS listener (certificate from `mirrormesh
// tls init`). What a stranger on the LAN can do: load the page, and nothing else: no pairing
// without a one-time code from `mirrormesh pair`, no code without the admin token, guesses
// limited. A code pairs one browser once; the credential it gets is a node's (own topics,
// over wss:// on the same origin), and `mirrormesh node remove` revokes it.
import { request } from 'node:https'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import mqtt from 'mqtt'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { cli, freePorts, killAll, removeDir, startHub, tempDir, type HubProc } from './support/harness.js'

interface Reply { status: number; body: any; text: string } // eslint-disable-line @typescript-eslint/no-explicit-any -- JSON of any route

let dir: string
let ca: Buffer
let hub: HubProc
let httpsPort: number

function https(path: string, opts: { method?: string; body?: unknown; auth?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({
      host: '127.0.0.1', servername: 'localhost', port: httpsPort, path, method: opts.method ?? 'GET', ca,
      headers: { ...(opts.auth ? { authorization: opts.auth } : {}), ...(opts.body !== undefined ? { 'content-type': 'application/json' } : {}) },
      signal: AbortSignal.timeout(5000),
    }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        let body: unknown
        try { body = JSON.parse(text) } catch { body = text }
        resolve({ status: res.statusCode ?? 0, body, text })
      })
    })
    req.on('error', reject)
    req.end(opts.body !== undefined ? JSON.stringify(opts.body) : undefined)
  })
}

const wss = (username: string, password: string, clientId = `node-${username}/t`) =>
  mqtt.connectAsync(`wss://localhost:${httpsPort}/mqtt`, { username, password, clientId, ca, reconnectPeriod: 0, connectTimeout: 5000 })

beforeAll(async () => {
  dir = await tempDir('mm-pair-')
  const tlsDir = join(dir, 'tls')
  const init = await cli(['tls', 'init', '--dir', tlsDir, '--name', 'localhost', '--ip', '127.0.0.1'])
  expect(init.code, init.stderr).toBe(0)
  ca = await readFile(join(tlsDir, 'ca.pem'))
  const [tlsPort, hp] = (await freePorts(2)) as [number, number]
  httpsPort = hp
  hub = await startHub({
    stateDir: dir, timeoutMs: 40_000,
    env: {
      MQTT_TLS_CERT: join(tlsDir, 'hub.pem'), MQTT_TLS_KEY: join(tlsDir, 'hub-key.pem'), MQTT_TLS_HOST: '127.0.0.1', MQTT_TLS_PORT: String(tlsPort),
      HTTPS_HOST: '127.0.0.1', HTTPS_PORT: String(httpsPort), AUTH_FAILURES_PER_MINUTE: '6', PIPELINE_ENABLED: 'false',
    },
  })
}, 60_000)

afterAll(async () => {
  await killAll()
  if (dir) await removeDir(dir)
})

describe('pairing a browser on the LAN', () => {
  it('a stranger gets the page but no identity; `mirrormesh pair` gives a one-time code; the browser gets node rights only', async () => {
    // The page and what it needs are open over HTTPS (nothing secret in them).
    const page = await https('/')
    expect(page.status).toBe(200)
    expect(page.text).toContain('talk-btn')
    expect((await https('/vendor/mqtt.min.js')).status).toBe(200)
    expect((await https('/page.json')).body).toMatchObject({ mode: 'hub', mqttPath: '/mqtt', pairing: 'code' })

    // A stranger cannot pair, cannot mint a code, and cannot reach the broker without a credential.
    const refused = await https('/api/pair', { method: 'POST', body: {} })
    expect(refused.status).toBe(401)
    expect(refused.body.message).toMatch(/mirrormesh pair/)
    expect((await https('/api/pair', { method: 'POST', body: { code: 'ABCD-EFGH' } })).status).toBe(401)
    expect((await https('/api/pair/code', { method: 'POST' })).status).toBe(401)
    await expect(wss('browser-00000000', 'guess')).rejects.toThrow()

    // The operator, on the hub: `mirrormesh pair` (the admin token from the state dir, loopback API).
    const pair = await cli(['pair', '--hub', `http://127.0.0.1:${hub.httpPort}`, '--url', 'https://mirror.lan:8443'], { MIRRORMESH_STATE_DIR: dir })
    expect(pair.code, pair.stderr).toBe(0)
    const code = /Pairing code: ([A-Z0-9]{4}-[A-Z0-9]{4})/.exec(pair.stdout)![1]!
    expect(pair.stdout).toContain(`https://mirror.lan:8443/#pair=${code}`)

    // The code pairs one browser (typed in lower case, without the dash), once.
    const paired = await https('/api/pair', { method: 'POST', body: { code: code.toLowerCase().replace('-', '') } })
    expect(paired.status).toBe(201)
    expect(paired.body.nodeId).toMatch(/^browser-[0-9a-f]{8}$/)
    expect((await https('/api/pair', { method: 'POST', body: { code } })).status).toBe(401)
    const { nodeId, password } = paired.body as { nodeId: string; password: string }
    expect(hub.out.text).not.toContain(password)

    // Over wss:// on the page's origin, with the hub's certificate: its own topics, nothing else.
    const c = await wss(nodeId, password)
    expect((await c.subscribeAsync(`mirrormesh/nodes/${nodeId}/audio/out`))[0]!.qos).toBe(0)
    await expect(c.subscribeAsync('mirrormesh/#')).rejects.toThrow(/Subscribe error/)
    await expect(c.subscribeAsync('mirrormesh/nodes/+/audio/in')).rejects.toThrow(/Subscribe error/)
    await c.endAsync()
    // Not the admin API either.
    expect((await https('/api/nodes', { auth: `Basic ${Buffer.from(`${nodeId}:${password}`).toString('base64')}` })).status).toBe(401)

    // Revoked like any node.
    const rm = await cli(['node', 'remove', nodeId], { MIRRORMESH_STATE_DIR: dir })
    expect(rm.code, rm.stderr).toBe(0)
    await expect(wss(nodeId, password)).rejects.toThrow()

    // Guessing codes is limited per address (AUTH_FAILURES_PER_MINUTE=6): then even a valid code waits.
    let last = 0
    for (let i = 0; i < 8; i++) last = (await https('/api/pair', { method: 'POST', body: { code: `ZZZZ-ZZZ${i}` } })).status
    expect(last).toBe(429)
    const fresh = JSON.parse((await cli(['pair', '--json', '--hub', `http://127.0.0.1:${hub.httpPort}`], { MIRRORMESH_STATE_DIR: dir })).stdout) as { code: string }
    expect((await https('/api/pair', { method: 'POST', body: { code: fresh.code } })).status).toBe(429)
  }, 90_000)
})

// `mirrormesh status` against real hubs, and the HTTP client every ops command shares
// (ops/src/api.ts): base URL, admin token, and errors an operator can act on.
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { cli, freePort, killAll, removeDir, tempDir, waitFor } from './support/harness.js'
import { BASE, createMesh } from './support/mesh.js'

const dirs: string[] = []
const servers: Server[] = []

afterEach(async () => {
  await killAll()
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r))
  for (const d of dirs.splice(0)) await removeDir(d)
})

describe('mirrormesh status', () => {
  it('one screen of a ready hub: exit 0, broker, nodes, turns, engine health; --json has the same', async () => {
    const m = await createMesh('embedded')
    dirs.push(m.stateDir)
    const kitchen = await m.client('kitchen')
    await kitchen.publishAsync(`${BASE}/nodes/kitchen/status`, 'online', { qos: 1, retain: true })
    await m.waitNode('kitchen', 'recovering')
    const hub = `http://127.0.0.1:${m.hub.httpPort}`

    const r = await cli(['status', '--hub', hub])
    expect(r.code, r.stderr).toBe(0)
    const lines = r.stdout.split('\n')
    expect(lines[0]).toMatch(/^hub: +main: ready, up \d+s \(hub \d+\.\d+\.\d+, node \d+\.\d+\.\d+\)$/)
    expect(r.stdout).toMatch(/^broker: +embedded, up \d+s, \d+ clients, \d+ messages$/m)
    expect(r.stdout).toMatch(/^nodes: +0 online, 1 recovering, 0 stale, 0 offline \(1 known\)$/m)
    expect(r.stdout).toMatch(/^turns: +0 running, 0 queued$/m)
    expect(r.stdout).toMatch(/^ {2}asr +degraded: sherpa: model_missing; pocketsphinx answers$/m)
    expect(r.stdout).toMatch(/^ {2}tts +degraded: sherpa: model_missing; espeak answers$/m)
    expect(r.stdout).toMatch(/^ {2}broker +ok$/m)
    expect(r.stdout).toMatch(/^bundle: +none \(building, or BUNDLE_ENABLED=false\)$/m)

    const j = await cli(['status', '--json', '--hub', hub])
    expect(j.code).toBe(0)
    const s = JSON.parse(j.stdout)
    expect(s).toMatchObject({ hubId: 'main', phase: 'ready', ready: true, notReady: {}, sessions: 0, queueDepth: 0, bundle: null, drain: null })
    expect(s.nodes).toEqual({ online: 0, recovering: 1, stale: 0, offline: 0, total: 1 })
    expect(s.broker.kind).toBe('embedded')
    expect(s.broker.clients).toBeGreaterThanOrEqual(2) // the hub's own client and kitchen
    expect(Object.keys(s.health).sort()).toEqual(['asr', 'broker', 'llm', 'memory', 'mqtt', 'tts', 'vad'])
    kitchen.end(true)
  })

  it('exits 2 for a hub that is up but not ready, naming the failing check', async () => {
    const dir = await tempDir()
    dirs.push(dir)
    const bad = join(dir, 'broken.gguf')
    await writeFile(bad, Buffer.from('GGUF but not really a model'))
    const m = await createMesh('embedded', { readyPath: '/healthz', hubEnv: { LLM_MODEL: bad } })
    dirs.push(m.stateDir)
    const hub = `http://127.0.0.1:${m.hub.httpPort}`
    // Only the LLM failing: under load other checks (engines still loading) can be failing at first.
    const onlyLlmFailing = async () => {
      const r = await m.hub.http('/readyz')
      const failing = Object.entries((r.body as { checks?: Record<string, boolean> }).checks ?? {}).filter(([, ok]) => !ok).map(([k]) => k)
      return r.status === 503 && failing.join() === 'llm'
    }
    await waitFor(onlyLlmFailing, { what: 'readyz 503 with only llm failing', timeoutMs: 30_000 })
    const r = await cli(['status', '--hub', hub])
    expect(r.code).toBe(2)
    expect(r.stdout).toMatch(/^hub: +main: ready, NOT READY/)
    expect(r.stdout).toMatch(/^not ready: +llm \(failing\)$/m)
    expect(r.stdout).toMatch(/^ {2}llm +down: llama: /m)
    expect(r.stdout).not.toContain(bad) // the model path is a setting's value: scrubbed
  })

  it('exits 1 with "hub not reachable" when nothing listens; --json says so on stdout', async () => {
    const port = await freePort()
    const r = await cli(['status', '--hub', `http://127.0.0.1:${port}`])
    expect(r.code).toBe(1)
    expect(r.stderr).toBe(`mirrormesh status: hub not reachable at http://127.0.0.1:${port} (connection refused). Is it running? Set --hub or HUB_URL.\n`)
    const j = await cli(['status', '--json'], { HUB_URL: `http://127.0.0.1:${port}` })
    expect(j.code).toBe(1)
    expect(JSON.parse(j.stdout)).toEqual({ ok: false, error: expect.stringContaining(`hub not reachable at http://127.0.0.1:${port}`) })
  })
})

describe('the operator commands', () => {
  it('each has --help', async () => {
    for (const cmd of ['status', 'drain', 'restart', 'ask', 'bundle']) {
      const r = await cli([cmd, '--help'])
      expect(r.code, cmd).toBe(0)
      expect(r.stdout).toMatch(new RegExp(`^Usage: mirrormesh ${cmd}`))
    }
  })
})

describe('the ops HTTP client (api.ts)', () => {
  /** A loopback stand-in for a hub whose admin routes want a token (the real check comes with the LAN work). */
  async function tokenHub(token: string): Promise<{ url: string; seen: string[] }> {
    const seen: string[] = []
    const srv = createServer((req, res) => {
      seen.push(req.headers.authorization ?? '')
      res.setHeader('content-type', 'application/json')
      if (req.url === '/api/status') { res.statusCode = 500; res.end(JSON.stringify({ error: 'engine_failed', message: 'the engine failed' })); return }
      if (req.headers.authorization !== `Bearer ${token}`) { res.statusCode = 401; res.end(JSON.stringify({ error: 'unauthorized', message: 'admin token required' })); return }
      res.end(JSON.stringify({ nodes: [] }))
    })
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r))
    servers.push(srv)
    return { url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}`, seen }
  }

  it('sends the token as a Bearer header (--token or MIRRORMESH_ADMIN_TOKEN), says missing/refused on 401, never prints it', async () => {
    const token = 'tok-3d9c1a77e2'
    const h = await tokenHub(token)
    const missing = await cli(['nodes', '--hub', h.url])
    expect(missing.code).toBe(1)
    expect(missing.stderr).toMatch(/admin token missing: the hub at http:\/\/127\.0\.0\.1:\d+ answered HTTP 401 \(admin token required\)\. Fix: run it on the hub as its user .*or pass --token \/ MIRRORMESH_ADMIN_TOKEN/)
    const wrong = await cli(['nodes', '--hub', h.url, '--token', 'not-it-123'])
    expect(wrong.code).toBe(1)
    expect(wrong.stderr).toMatch(/admin token refused: the hub at .* answered HTTP 401/)
    expect(wrong.stderr).not.toContain('not-it-123')
    const viaFlag = await cli(['nodes', '--hub', h.url, '--token', token])
    expect(viaFlag.code).toBe(0)
    expect(viaFlag.stdout).toBe('no nodes have connected yet\n')
    const viaEnv = await cli(['nodes', '--json'], { HUB_URL: h.url, MIRRORMESH_ADMIN_TOKEN: token })
    expect(viaEnv.code).toBe(0)
    expect(h.seen).toEqual(['', 'Bearer not-it-123', `Bearer ${token}`, `Bearer ${token}`])
    for (const r of [missing, wrong, viaFlag, viaEnv]) expect(r.stdout + r.stderr).not.toContain(token)
  })

  it('a non-2xx answer carries the hub\'s own message', async () => {
    const h = await tokenHub('x')
    const r = await cli(['status', '--hub', h.url])
    expect(r.code).toBe(1)
    expect(r.stderr).toBe(`mirrormesh status: hub at ${h.url} answered HTTP 500 (engine_failed: the engine failed)\n`)
  })
})

// The LAN rule in isolation: which paths need what, the per-address limit, the token file.
// The same rule over real HTTPS with real processes: test/lan-security.test.ts.
import { mkdtempSync, rmSync } from 'node:fs'
import { readFile, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { Registry } from 'prom-client'
import { buildApp, type HubApi } from '../app.js'
import { NodeRegistry } from '../registry.js'
import { FailureLimiter, authFailuresCounter, ensureAdminToken, isLoopback, secretEquals } from './auth.js'

const root = mkdtempSync(join(tmpdir(), 'mm-auth-'))
afterAll(() => rmSync(root, { recursive: true, force: true }))

function lanApp(opts: { perMinute?: number } = {}) {
  const metrics = new Registry()
  let drained = 0
  const hub: HubApi = {
    registry: new NodeRegistry({ staleMs: 3000, metrics }), metrics,
    readiness: () => ({ ready: true, checks: {} }), uptimeS: () => 1, drain: () => { drained++ },
  }
  const failures = authFailuresCounter(metrics)
  const app = buildApp(hub, {
    lanAuth: {
      adminToken: 'tok-123', limiter: new FailureLimiter(opts.perMinute ?? 100), failures,
      verify: async (u, p) => (u === 'kitchen' && p === 'pw' ? { id: u, role: 'node' } : u === 'dash' && p === 'pw' ? { id: u, role: 'observer' } : undefined),
    },
  })
  return { app, metrics, drained: () => drained }
}
const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`

describe('LAN listener auth', () => {
  it('probes and metrics are open; admin routes need the token; the bundle takes a node credential', async () => {
    const { app, drained } = lanApp()
    for (const url of ['/healthz', '/readyz', '/metrics']) expect((await app.inject({ url })).statusCode).toBe(200)
    expect((await app.inject({ method: 'POST', url: '/api/drain' })).statusCode).toBe(401)
    expect((await app.inject({ method: 'POST', url: '/api/drain', headers: { authorization: 'Bearer tok-1234' } })).statusCode).toBe(401)
    expect((await app.inject({ method: 'POST', url: '/api/drain', headers: { authorization: basic('kitchen', 'pw') } })).statusCode).toBe(401)
    expect(drained()).toBe(0)
    expect((await app.inject({ method: 'POST', url: '/api/drain', headers: { authorization: 'Bearer tok-123' } })).statusCode).toBe(202)
    expect(drained()).toBe(1)
    // Unknown paths are refused before they are "not found": nothing to learn without the token.
    expect((await app.inject({ url: '/api/nope' })).statusCode).toBe(401)
    // No bundle service here: past auth the route answers 404, before it 401.
    expect((await app.inject({ url: '/api/bundle/manifest' })).statusCode).toBe(401)
    expect((await app.inject({ url: '/api/bundle/manifest', headers: { authorization: basic('kitchen', 'no') } })).statusCode).toBe(401)
    expect((await app.inject({ url: '/api/bundle/manifest', headers: { authorization: basic('dash', 'pw') } })).statusCode).toBe(401)
    expect((await app.inject({ url: '/api/bundle/manifest', headers: { authorization: basic('kitchen', 'pw') } })).statusCode).toBe(404)
    expect((await app.inject({ url: '/api/bundle/manifest?x=1', headers: { authorization: 'Bearer tok-123' } })).statusCode).toBe(404)
    await app.close()
  })

  it('limits failures per address (429 with Retry-After), counts them, and never locks out the token', async () => {
    const { app, metrics } = lanApp({ perMinute: 3 })
    for (let i = 0; i < 3; i++) expect((await app.inject({ url: '/api/nodes' })).statusCode).toBe(401)
    const limited = await app.inject({ url: '/api/bundle/manifest', headers: { authorization: basic('kitchen', 'pw') } })
    expect(limited.statusCode).toBe(429)
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0)
    expect((await app.inject({ url: '/api/nodes', headers: { authorization: 'Bearer tok-123' } })).statusCode).toBe(200)
    const text = await metrics.metrics()
    expect(text).toMatch(/mirrormesh_http_auth_failures_total\{kind="token"\} 3/)
    expect(text).toMatch(/mirrormesh_http_auth_failures_total\{kind="rate_limited"\} 1/)
    expect(text).not.toContain('tok-123')
    await app.close()
  })

  it('the limiter forgets after a minute and remembers a bounded number of addresses', () => {
    let now = 0
    const l = new FailureLimiter(2, 3, () => now)
    l.fail('a'); l.fail('a')
    expect(l.retryAfterS('a')).toBe(60)
    now = 30_000
    expect(l.retryAfterS('a')).toBe(30)
    now = 60_001
    expect(l.retryAfterS('a')).toBe(0)
    for (const a of ['b', 'c', 'd', 'e']) { l.fail(a); l.fail(a) }
    expect(l.retryAfterS('b')).toBe(0) // evicted: the oldest goes first
    expect(l.retryAfterS('e')).toBeGreaterThan(0)
  })

  it('tells loopback listeners from LAN ones, compares secrets of any length', () => {
    for (const h of ['127.0.0.1', '127.0.0.53', '::1', '[::1]', 'localhost']) expect(isLoopback(h)).toBe(true)
    for (const h of ['0.0.0.0', '::', '192.168.1.10', 'hub.lan', '128.0.0.1']) expect(isLoopback(h)).toBe(false)
    expect(secretEquals('abc', 'abc')).toBe(true)
    expect(secretEquals('abc', 'abcd')).toBe(false)
    expect(secretEquals('', 'x')).toBe(false)
  })

  it('the admin token is made once, 0600, and kept across starts; an empty file is replaced', async () => {
    const dir = join(root, 'state')
    await (await import('node:fs/promises')).mkdir(dir)
    const t1 = await ensureAdminToken(dir)
    expect(t1).toMatch(/^[A-Za-z0-9_-]{43}$/)
    expect((await stat(join(dir, 'admin-token'))).mode & 0o777).toBe(0o600)
    expect(await ensureAdminToken(dir)).toBe(t1)
    await writeFile(join(dir, 'admin-token'), '\n')
    const t2 = await ensureAdminToken(dir)
    expect(t2).not.toBe(t1)
    expect((await readFile(join(dir, 'admin-token'), 'utf8')).trim()).toBe(t2)
  })
})

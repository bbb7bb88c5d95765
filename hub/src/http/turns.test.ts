// POST /api/turns on a LAN listener: the admin token, or a node's own credential for that node
// only; memory routes need the admin token. The turn itself is a stand-in (the route's concern
// is who may start it); the real pipeline runs in test/memory.test.ts.
import { describe, expect, it } from 'vitest'
import { Registry } from 'prom-client'
import { buildApp, type HubApi } from '../app.js'
import { NodeRegistry } from '../registry.js'
import { FailureLimiter, authFailuresCounter } from './auth.js'

function lanApp() {
  const metrics = new Registry()
  const started: Array<[string, string, string | undefined]> = []
  const hub: HubApi = {
    registry: new NodeRegistry({ staleMs: 3000, metrics }), metrics,
    readiness: () => ({ ready: true, checks: {} }), uptimeS: () => 1, drain: () => undefined,
    turns: { turn: async (node, text, user) => { started.push([node, text, user]); return { turnId: 1, outcome: 'ok', kind: 'skill', transcript: text, reply: 'ok', ttfaMs: 5 } } },
  }
  const app = buildApp(hub, {
    lanAuth: {
      adminToken: 'tok-123', limiter: new FailureLimiter(100), failures: authFailuresCounter(metrics),
      verify: async (u, p) => (u === 'kitchen' && p === 'pw' ? { id: u, role: 'node' } : u === 'dash' && p === 'pw' ? { id: u, role: 'observer' } : undefined),
    },
  })
  return { app, started }
}
const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`
const post = (authorization: string | undefined, body: unknown) => ({ method: 'POST' as const, url: '/api/turns', payload: body as object, headers: authorization ? { authorization } : {} })

describe('POST /api/turns on a LAN listener', () => {
  it('takes the admin token for any node, and a node credential for that node only', async () => {
    const { app, started } = lanApp()
    expect((await app.inject(post(undefined, { node: 'kitchen', text: 'hi' }))).statusCode).toBe(401)
    expect((await app.inject(post(basic('kitchen', 'nope'), { node: 'kitchen', text: 'hi' }))).statusCode).toBe(401)
    expect((await app.inject(post(basic('dash', 'pw'), { node: 'kitchen', text: 'hi' }))).statusCode).toBe(401) // observers use MQTT turn/text
    const other = await app.inject(post(basic('kitchen', 'pw'), { node: 'hall', text: 'where are my keys' }))
    expect(other.statusCode).toBe(403)
    expect(other.json()).toMatchObject({ error: 'forbidden', message: "node kitchen's credential may only start turns on kitchen" })
    const own = await app.inject(post(basic('kitchen', 'pw'), { node: 'kitchen', text: 'where are my keys', user: 'ana' }))
    expect(own.statusCode).toBe(200)
    expect(own.json()).toMatchObject({ outcome: 'ok', reply: 'ok', ttfaMs: 5 })
    expect((await app.inject(post('Bearer tok-123', { node: 'hall', text: 'hello' }))).statusCode).toBe(200)
    expect(started).toEqual([['kitchen', 'where are my keys', 'ana'], ['hall', 'hello', undefined]])
    // The node credential opens this route only: not the memory routes.
    expect((await app.inject({ url: '/api/memory/room:kitchen', headers: { authorization: basic('kitchen', 'pw') } })).statusCode).toBe(401)
    expect((await app.inject({ url: '/api/memory/room:kitchen', headers: { authorization: 'Bearer tok-123' } })).statusCode).toBe(503) // no memory here
  })

  it('refuses bad bodies with 400 and starts nothing', async () => {
    const { app, started } = lanApp()
    for (const body of [{ node: 'kitchen' }, { node: 'kitchen', text: '' }, { node: '../x', text: 'hi' }, { node: 'kitchen', text: 'x'.repeat(501) }]) {
      expect((await app.inject(post('Bearer tok-123', body))).statusCode).toBe(400)
    }
    expect(started).toEqual([])
  })
})

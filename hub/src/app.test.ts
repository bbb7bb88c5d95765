import { Registry } from 'prom-client'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import type { FastifyInstance } from 'fastify'
import { createLogger, type NodeHeartbeat } from '@mirrormesh/broker'
import { buildApp, type HubApi } from './app.js'
import { NodeRegistry } from './registry.js'

let app: FastifyInstance
let registry: NodeRegistry
let ready: { ready: boolean; checks: Record<string, boolean> }
const drain = vi.fn<(reason: string) => void>()

function heartbeat(node: string): void {
  const hb: NodeHeartbeat = { v: 1, ts: Date.now(), seq: 1, uptimeS: 1, cpuPct: null, memPct: null, rssMb: 1, temperatureC: null, versions: {}, mode: 'online' }
  registry.handle('nodeStatus', { node }, 'online')
  registry.handle('nodeHeartbeat', { node }, hb)
}

beforeEach(() => {
  const metrics = new Registry()
  registry = new NodeRegistry({ staleMs: 3000, metrics, log: createLogger({ name: 'test', level: 'silent' }) })
  ready = { ready: true, checks: { broker: true, mqtt: true } }
  drain.mockClear()
  const hub: HubApi = { registry, metrics, readiness: () => ready, uptimeS: () => 42.4, drain }
  app = buildApp(hub)
})
afterEach(async () => {
  await app.close()
})

describe('hub HTTP API', () => {
  it('answers /healthz with uptime', async () => {
    const res = await app.inject({ method: 'GET', url: '/healthz' })
    expect(res.statusCode).toBe(200)
    expect(res.json()).toEqual({ status: 'ok', uptimeS: 42 })
  })

  it('answers /readyz 200 when ready and 503 with the failing check when not', async () => {
    const ok = await app.inject({ method: 'GET', url: '/readyz' })
    expect(ok.statusCode).toBe(200)
    expect(ok.json()).toEqual({ ready: true, checks: { broker: true, mqtt: true } })
    ready = { ready: false, checks: { broker: true, mqtt: false } }
    const notReady = await app.inject({ method: 'GET', url: '/readyz' })
    expect(notReady.statusCode).toBe(503)
    expect(notReady.json()).toEqual({ ready: false, checks: { broker: true, mqtt: false } })
  })

  it('serves Prometheus metrics including node counts by state', async () => {
    heartbeat('kitchen')
    registry.handle('nodeStatus', { node: 'hall' }, 'offline')
    const res = await app.inject({ method: 'GET', url: '/metrics' })
    expect(res.statusCode).toBe(200)
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/)
    expect(res.body).toContain('mirrormesh_nodes{state="online"} 1')
    expect(res.body).toContain('mirrormesh_nodes{state="offline"} 1')
    expect(res.body).toContain('mirrormesh_nodes{state="stale"} 0')
  })

  it('lists nodes sorted by id', async () => {
    heartbeat('kitchen')
    heartbeat('hall')
    const res = await app.inject({ method: 'GET', url: '/api/nodes' })
    expect(res.statusCode).toBe(200)
    const { nodes } = res.json() as { nodes: Array<{ id: string; state: string }> }
    expect(nodes.map((n) => [n.id, n.state])).toEqual([['hall', 'online'], ['kitchen', 'online']])
  })

  it('returns one node, or 404 with an error body', async () => {
    heartbeat('kitchen')
    const res = await app.inject({ method: 'GET', url: '/api/nodes/kitchen' })
    expect(res.statusCode).toBe(200)
    expect(res.json()).toMatchObject({ id: 'kitchen', state: 'online', status: 'online' })
    const missing = await app.inject({ method: 'GET', url: '/api/nodes/attic' })
    expect(missing.statusCode).toBe(404)
    expect(missing.json()).toEqual({ error: 'not_found', message: 'no node attic' })
  })

  it('rejects an over-long node id with 400', async () => {
    const res = await app.inject({ method: 'GET', url: `/api/nodes/${'a'.repeat(65)}` })
    expect(res.statusCode).toBe(400)
  })

  it('reports and clears heartbeat delay stats', async () => {
    heartbeat('kitchen')
    const stats = await app.inject({ method: 'GET', url: '/api/stats/heartbeats' })
    expect(stats.json()).toMatchObject({ samples: 1, total: 1 })
    const cleared = await app.inject({ method: 'DELETE', url: '/api/stats/heartbeats' })
    expect(cleared.statusCode).toBe(204)
    expect(registry.delayStats().samples).toBe(0)
  })

  it('starts a drain on POST /api/drain', async () => {
    const res = await app.inject({ method: 'POST', url: '/api/drain' })
    expect(res.statusCode).toBe(202)
    expect(res.json()).toEqual({ status: 'draining' })
    expect(drain).toHaveBeenCalledTimes(1)
    expect(drain).toHaveBeenCalledWith('api')
  })

  it('GET/PUT /api/nodes/:id/config: 200 with the config, 400 for a bad body, 404 for an unknown node', async () => {
    const fail = (code: string, message: string) => Object.assign(new Error(message), { code })
    const nodeConfig = {
      get: async (id: string) => { if (id !== 'kitchen') throw fail('unknown_node', `no node "${id}"`); return { id, config: { room: 'kitchen' }, updatedAt: 5 } },
      update: async (id: string, body: unknown) => {
        if ((body as { volume?: number }).volume === 140) throw fail('bad_config', 'invalid node config: volume: Too big')
        return { id, config: body as { volume: number }, updatedAt: 6 }
      },
    }
    const a = buildApp({ registry, metrics: new Registry(), readiness: () => ready, uptimeS: () => 1, drain, nodeConfig })
    expect((await a.inject({ method: 'GET', url: '/api/nodes/kitchen/config' })).json()).toEqual({ id: 'kitchen', config: { room: 'kitchen' }, updatedAt: 5 })
    const missing = await a.inject({ method: 'GET', url: '/api/nodes/attic/config' })
    expect(missing.statusCode).toBe(404)
    expect(missing.json()).toEqual({ error: 'unknown_node', message: 'no node "attic"' })
    const bad = await a.inject({ method: 'PUT', url: '/api/nodes/kitchen/config', payload: { volume: 140 } })
    expect(bad.statusCode).toBe(400)
    expect(bad.json()).toEqual({ error: 'bad_config', message: 'invalid node config: volume: Too big' })
    const ok = await a.inject({ method: 'PUT', url: '/api/nodes/kitchen/config', payload: { volume: 30 } })
    expect(ok.statusCode).toBe(200)
    expect(ok.json()).toEqual({ id: 'kitchen', config: { volume: 30 }, updatedAt: 6 })
    await a.close()
  })
})

describe('admin routes (node rebuild, backup)', () => {
  it('answer with the node admin result, and map its errors to status codes with the message', async () => {
    const { NodeAdminError } = await import('./features/node-admin.js')
    const calls: unknown[] = []
    const nodes = {
      rebuild: async (id: string, timeoutMs?: number) => {
        calls.push(['rebuild', id, timeoutMs])
        if (id === 'gone') throw new NodeAdminError('timeout', 'node gone did not confirm the rebuild within 2 s')
        return { id, op: 'rebuild' as const, ms: 5 }
      },
      moveIdentity: async (id: string, newId: string) => {
        if (newId === 'taken') throw new NodeAdminError('conflict', 'taken already exists on this hub')
        return { id: newId, previousId: id, op: 'identity' as const, ms: 7 }
      },
    }
    const metrics = new Registry()
    const admin = buildApp({ registry, metrics, readiness: () => ready, uptimeS: () => 1, drain, admin: { retained: async () => ({ retained: [], external: false }), nodes } })
    try {
      const ok = await admin.inject({ method: 'POST', url: '/api/nodes/kitchen/rebuild', payload: { timeoutMs: 2000 } })
      expect(ok.statusCode).toBe(200)
      expect(ok.json()).toEqual({ id: 'kitchen', op: 'rebuild', ms: 5 })
      expect(calls).toEqual([['rebuild', 'kitchen', 2000]])
      const late = await admin.inject({ method: 'POST', url: '/api/nodes/gone/rebuild' })
      expect(late.statusCode).toBe(504)
      expect(late.json()).toEqual({ error: 'timeout', message: 'node gone did not confirm the rebuild within 2 s' })
      const moved = await admin.inject({ method: 'POST', url: '/api/nodes/kitchen/identity', payload: { newId: 'hall-2' } })
      expect(moved.json()).toEqual({ id: 'hall-2', previousId: 'kitchen', op: 'identity', ms: 7 })
      expect((await admin.inject({ method: 'POST', url: '/api/nodes/kitchen/identity', payload: { newId: 'taken' } })).statusCode).toBe(409)
      expect((await admin.inject({ method: 'POST', url: '/api/nodes/kitchen/identity', payload: {} })).statusCode).toBe(400)
      expect((await admin.inject({ method: 'POST', url: '/api/nodes/kitchen/rebuild', payload: { timeoutMs: 5 } })).statusCode).toBe(400)
      expect((await admin.inject({ method: 'POST', url: '/api/backup/retained' })).json()).toEqual({ retained: [], external: false })
    } finally {
      await admin.close()
    }
  })

  it('are absent (404) when the hub gives no admin API', async () => {
    expect((await app.inject({ method: 'POST', url: '/api/nodes/kitchen/rebuild' })).statusCode).toBe(404)
    expect((await app.inject({ method: 'POST', url: '/api/backup/retained' })).statusCode).toBe(404)
  })
})

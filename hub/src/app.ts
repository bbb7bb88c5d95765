// HTTP API: health, readiness, metrics, nodes, drain. buildApp() is separate from
// listen() so tests use app.inject().
import Fastify, { type FastifyInstance } from 'fastify'
import type { Registry } from 'prom-client'
import type { NodeRegistry } from './registry.js'

export interface HubApi {
  readonly registry: NodeRegistry
  readonly metrics: Registry
  readiness(): { ready: boolean; checks: Record<string, boolean> }
  uptimeS(): number
  drain(reason: string): void
}

export function buildApp(hub: HubApi, opts: { logger?: boolean } = {}): FastifyInstance {
  const app = Fastify({ logger: opts.logger ?? false })

  app.get('/healthz', async () => ({ status: 'ok', uptimeS: Math.round(hub.uptimeS()) }))

  app.get('/readyz', async (_req, reply) => {
    const r = hub.readiness()
    return reply.code(r.ready ? 200 : 503).send(r)
  })

  app.get('/metrics', async (_req, reply) => {
    const body = await hub.metrics.metrics()
    return reply.type(hub.metrics.contentType).send(body)
  })

  app.get('/api/nodes', async () => ({ nodes: hub.registry.list() }))

  app.get<{ Params: { id: string } }>('/api/nodes/:id', {
    schema: { params: { type: 'object', properties: { id: { type: 'string', maxLength: 64 } }, required: ['id'] } },
  }, async (req, reply) => {
    const node = hub.registry.get(req.params.id)
    if (!node) return reply.code(404).send({ error: 'not_found', message: `no node ${req.params.id}` })
    return node
  })

  app.get('/api/stats/heartbeats', async () => hub.registry.delayStats())
  app.delete('/api/stats/heartbeats', async (_req, reply) => {
    hub.registry.delays.clear()
    return reply.code(204).send()
  })

  app.post('/api/drain', async (_req, reply) => {
    hub.drain('api')
    return reply.code(202).send({ status: 'draining' })
  })

  return app
}

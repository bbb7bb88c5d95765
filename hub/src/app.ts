// HTTP API: health, readiness, metrics, nodes, drain. buildApp() is separate from
// listen() so tests use app.inject().
import { createReadStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import Fastify, { type FastifyInstance } from 'fastify'
import type { Registry } from 'prom-client'
import type { BundleManifest } from '@mirrormesh/broker'
import type { NodeRegistry } from './registry.js'

export interface HubApi {
  readonly registry: NodeRegistry
  readonly metrics: Registry
  readiness(): { ready: boolean; checks: Record<string, boolean> }
  uptimeS(): number
  drain(reason: string): void
  /** Offline reply bundle (bundle/service.ts); absent: the bundle routes answer 404. */
  readonly bundles?: { manifest(): BundleManifest | undefined; filePath(version: string, file: string): Promise<string | undefined> }
  /** Replayed offline turns (bundle/journal.ts), newest first. */
  readonly offlineTurns?: { list(limit?: number): unknown[] }
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

  app.get('/api/bundle/manifest', async (_req, reply) => {
    const m = hub.bundles?.manifest()
    if (!m) return reply.code(404).send({ error: 'not_found', message: 'no offline bundle yet (building)' })
    return m
  })

  app.get<{ Params: { version: string; file: string } }>('/api/bundle/:version/:file', {
    schema: { params: { type: 'object', properties: { version: { type: 'string', maxLength: 64 }, file: { type: 'string', maxLength: 128 } }, required: ['version', 'file'] } },
  }, async (req, reply) => {
    // Only names listed in that bundle's manifest resolve: no path traversal.
    const path = await hub.bundles?.filePath(req.params.version, req.params.file)
    const size = path ? await stat(path).then((s) => s.size, () => undefined) : undefined
    if (!path || size === undefined) return reply.code(404).send({ error: 'not_found', message: 'no such bundle file' })
    return reply
      .type(req.params.file === 'manifest.json' ? 'application/json' : 'application/octet-stream')
      .header('content-length', size)
      .header('cache-control', 'public, max-age=31536000, immutable')
      .send(createReadStream(path))
  })

  app.get<{ Querystring: { limit?: number } }>('/api/offline-turns', {
    schema: { querystring: { type: 'object', properties: { limit: { type: 'integer', minimum: 1, maximum: 1000 } } } },
  }, async (req) => ({ turns: hub.offlineTurns?.list(req.query.limit) ?? [] }))

  return app
}

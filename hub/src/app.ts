// HTTP API: health, readiness, metrics, nodes, drain. buildApp() is separate from
// listen() so tests use app.inject().
import { createReadStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify'
import type { Registry } from 'prom-client'
import type {
  ApiError, BundleManifest, DrainResponse, HealthzResponse, NodeConfigResponse, NodesResponse, NodeView, OfflineTurnView, ReadinessResponse,
} from '@mirrormesh/broker'
import type { NodeRegistry } from './registry.js'

/** Node config (features/node-config.ts); errors carry code unknown_node (404) or bad_config (400). */
export interface NodeConfigApi {
  get(id: string): Promise<NodeConfigResponse>
  update(id: string, body: unknown): Promise<NodeConfigResponse>
}

export interface HubApi {
  readonly registry: NodeRegistry
  readonly metrics: Registry
  readiness(): ReadinessResponse
  uptimeS(): number
  drain(reason: string): void
  /** Offline reply bundle (bundle/service.ts); absent: the bundle routes answer 404. */
  readonly bundles?: { manifest(): BundleManifest | undefined; filePath(version: string, file: string): Promise<string | undefined> }
  /** Replayed offline turns (bundle/journal.ts), newest first. */
  readonly offlineTurns?: { list(limit?: number): OfflineTurnView[] }
  /** Absent: the node config routes answer 404. */
  readonly nodeConfig?: NodeConfigApi
}

const idParams = { type: 'object', properties: { id: { type: 'string', maxLength: 64 } }, required: ['id'] } as const
const notFound = (message: string): ApiError => ({ error: 'not_found', message })

export function buildApp(hub: HubApi, opts: { logger?: boolean } = {}): FastifyInstance {
  const app = Fastify({ logger: opts.logger ?? false })

  app.get('/healthz', async (): Promise<HealthzResponse> => ({ status: 'ok', uptimeS: Math.round(hub.uptimeS()) }))

  app.get('/readyz', async (_req, reply) => {
    const r = hub.readiness()
    return reply.code(r.ready ? 200 : 503).send(r)
  })

  app.get('/metrics', async (_req, reply) => {
    const body = await hub.metrics.metrics()
    return reply.type(hub.metrics.contentType).send(body)
  })

  app.get('/api/nodes', async (): Promise<NodesResponse> => ({ nodes: hub.registry.list() }))

  app.get<{ Params: { id: string } }>('/api/nodes/:id', { schema: { params: idParams } }, async (req, reply) => {
    const node: NodeView | undefined = hub.registry.get(req.params.id)
    if (!node) return reply.code(404).send(notFound(`no node ${req.params.id}`))
    return node
  })

  app.register(nodeConfigRoutes(hub.nodeConfig))

  app.get('/api/stats/heartbeats', async () => hub.registry.delayStats())
  app.delete('/api/stats/heartbeats', async (_req, reply) => {
    hub.registry.delays.clear()
    return reply.code(204).send()
  })

  app.post('/api/drain', async (_req, reply) => {
    hub.drain('api')
    return reply.code(202).send({ status: 'draining' } satisfies DrainResponse)
  })

  app.get('/api/bundle/manifest', async (_req, reply) => {
    const m = hub.bundles?.manifest()
    if (!m) return reply.code(404).send(notFound('no offline bundle yet (building)'))
    return m
  })

  app.get<{ Params: { version: string; file: string } }>('/api/bundle/:version/:file', {
    schema: { params: { type: 'object', properties: { version: { type: 'string', maxLength: 64 }, file: { type: 'string', maxLength: 128 } }, required: ['version', 'file'] } },
  }, async (req, reply) => {
    // Only names listed in that bundle's manifest resolve: no path traversal.
    const path = await hub.bundles?.filePath(req.params.version, req.params.file)
    const size = path ? await stat(path).then((s) => s.size, () => undefined) : undefined
    if (!path || size === undefined) return reply.code(404).send(notFound('no such bundle file'))
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

/**
 * GET/PUT /api/nodes/:id/config. PUT takes a partial update (room, name, wakeWord, volume)
 * and answers the whole config; 400 on a bad body, 404 for a node with no credential here.
 */
function nodeConfigRoutes(api: NodeConfigApi | undefined) {
  return async (app: FastifyInstance) => {
    const answer = async (reply: FastifyReply, run: () => Promise<NodeConfigResponse>) => {
      if (!api) return reply.code(404).send(notFound('node config is not served by this hub'))
      try {
        return await run()
      } catch (err) {
        const code = (err as { code?: unknown }).code
        if (code === 'unknown_node') return reply.code(404).send({ error: 'unknown_node', message: (err as Error).message } satisfies ApiError)
        if (code === 'bad_config') return reply.code(400).send({ error: 'bad_config', message: (err as Error).message } satisfies ApiError)
        throw err
      }
    }
    app.get<{ Params: { id: string } }>('/api/nodes/:id/config', { schema: { params: idParams } }, (req, reply) => answer(reply, () => api!.get(req.params.id)))
    app.put<{ Params: { id: string } }>('/api/nodes/:id/config', { schema: { params: idParams } }, (req, reply) => answer(reply, () => api!.update(req.params.id, req.body)))
  }
}

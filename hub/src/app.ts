// HTTP API: one fastify plugin per concern (http/*.ts). buildApp() is separate from
// listen() (features/http.ts) so tests use app.inject(). Wire types: broker/src/http.ts.
import Fastify, { type FastifyInstance } from 'fastify'
import type { ServerOptions as HttpsServerOptions } from 'node:https'
import type { Registry } from 'prom-client'
import type { BundleManifest, DrainResponse, NodeConfigResponse, OfflineTurnView, ReadinessResponse } from '@mirrormesh/broker'
import type { NodeRegistry } from './registry.js'
import { lanAuthHook, type LanAuthOptions } from './http/auth.js'
import { bundleRoutes } from './http/bundle.js'
import { nodeConfigRoutes, nodeRoutes } from './http/nodes.js'
import { probeRoutes } from './http/probes.js'

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

export interface AppOptions {
  logger?: boolean
  /** A LAN listener (http/auth.ts): its /api routes need the admin token or a node's credential. Unset: a local (loopback) listener. */
  lanAuth?: LanAuthOptions
  /** Serve HTTPS with this certificate and key. */
  https?: Pick<HttpsServerOptions, 'cert' | 'key'>
}

export function buildApp(hub: HubApi, opts: AppOptions = {}): FastifyInstance {
  // The HTTPS instance has the same routes; only its server type differs, which no route sees.
  const app = (opts.https ? Fastify({ logger: opts.logger ?? false, https: opts.https }) : Fastify({ logger: opts.logger ?? false })) as FastifyInstance
  if (opts.lanAuth) app.addHook('onRequest', lanAuthHook(opts.lanAuth))
  app.register(probeRoutes(hub))
  app.register(nodeRoutes(hub))
  app.register(nodeConfigRoutes(hub.nodeConfig))
  app.register(bundleRoutes(hub))
  app.post('/api/drain', async (_req, reply) => {
    hub.drain('api')
    return reply.code(202).send({ status: 'draining' } satisfies DrainResponse)
  })
  return app
}

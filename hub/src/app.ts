// HTTP API: one fastify plugin per concern (http/*.ts). buildApp() is separate from
// listen() (features/http.ts) so tests use app.inject(). Wire types: broker/src/http.ts.
import Fastify, { type FastifyInstance } from 'fastify'
import type { ServerOptions as HttpsServerOptions } from 'node:https'
import type { Registry } from 'prom-client'
import type { ApiError, BundleManifest, DrainResponse, DrainedResponse, DrainView, NodeConfigResponse, OfflineTurnView, ReadinessResponse } from '@mirrormesh/broker'
import type { NodeRegistry } from './registry.js'
import { lanAuthHook, type LanAuthOptions } from './http/auth.js'
import { bundleRoutes } from './http/bundle.js'
import { nodeConfigRoutes, nodeRoutes } from './http/nodes.js'
import { probeRoutes } from './http/probes.js'
import { debugRoutes, type DebugSource } from './http/debug.js'
import { statusRoutes, type StatusSource } from './http/status.js'
import { adminRoutes, type AdminApi } from './http/admin.js'
import { turnRoutes, type TextTurnApi } from './http/turns.js'
import { memoryRoutes } from './memory/http.js'
import type { Memory } from './memory/service.js'
import { pageRoutes, type PageSource } from './http/page.js'
import { pairRoutes, type PairApi, type PairCodes } from './http/pair.js'

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
  /** GET /api/status; absent: 404. */
  readonly status?: StatusSource
  /** Every component's health as health/{component} publishes it. */
  health?(): Record<string, { state: 'ok' | 'degraded' | 'down'; reason?: string }>
  readonly versions?: Record<string, string>
  /** The drain started (or finished) and a promise of its end: POST /api/drain?wait=true answers with it. */
  drainState?(): { view: DrainView; done: Promise<DrainView> } | undefined
  /** Recent log records for bug bundles (GET /api/debug/turns/:id); absent: 404. */
  readonly debug?: DebugSource
  /** Operator admin routes (backup, node rebuild); absent: 404. */
  readonly admin?: AdminApi
  /** POST /api/turns (typed turns); absent: 404. */
  readonly turns?: TextTurnApi
  /** /api/memory routes; returns undefined while memory is off or failed: 503. */
  memory?(): Memory | undefined
  /** The mirror screen at / (http/page.ts); absent: no page. */
  readonly page?: PageSource
  /** Browser pairing (http/pair.ts); absent: 404. */
  readonly pair?: PairApi & { codes: PairCodes }
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
  app.register(adminRoutes(hub.admin))
  app.register(statusRoutes(hub))
  app.register(debugRoutes(hub))
  app.register(turnRoutes(hub.turns))
  app.register(memoryRoutes(() => hub.memory?.()))
  app.register(pageRoutes(hub.page, opts.lanAuth !== undefined))
  if (hub.pair) app.register(pairRoutes(hub.pair, hub.pair.codes, opts.lanAuth))
  // ?wait=true answers once running turns ended (bounded by DRAIN_TIMEOUT_MS), just before the
  // hub stops: how `mirrormesh drain --wait` learns how many turns finished.
  app.post<{ Querystring: { wait?: boolean } }>('/api/drain', {
    schema: { querystring: { type: 'object', properties: { wait: { type: 'boolean' } } } },
  }, async (req, reply) => {
    hub.drain('api')
    const state = req.query.wait ? hub.drainState?.() : undefined
    if (state) return reply.code(200).send({ status: 'drained', drain: await state.done } satisfies DrainedResponse)
    if (req.query.wait && hub.drainState) return reply.code(409).send({ error: 'not_ready', message: 'the hub is still starting: there is nothing to drain yet' } satisfies ApiError)
    return reply.code(202).send({ status: 'draining' } satisfies DrainResponse)
  })
  return app
}

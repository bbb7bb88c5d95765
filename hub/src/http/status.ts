// GET /api/status: the hub on one screen (`mirrormesh status`), gathered from the parts that
// already know — readiness, the node registry, the voice load, component health, the bundle
// manifest and the embedded broker's own metrics — so it never disagrees with them.
import type { FastifyInstance } from 'fastify'
import type { Registry } from 'prom-client'
import { nodeStates, type DrainView, type HubStatusResponse } from '@mirrormesh/broker'
import type { HubApi } from '../app.js'

/** What only the hub root knows. */
export interface StatusSource {
  hubId: string
  brokerKind: 'embedded' | 'external'
  phase(): HubStatusResponse['phase']
  load(): { sessions: number; queueDepth: number }
  /** The drain in progress or finished; null before any. */
  drain(): DrainView | null
}

/** A gauge or counter's current value (collect() runs), or null when it is not registered. */
async function metricValue(metrics: Registry, name: string): Promise<number | null> {
  const m = metrics.getSingleMetric(name)
  if (!m) return null
  const v = (await m.get()).values[0]?.value
  return typeof v === 'number' ? v : null
}

export async function collectStatus(hub: Pick<HubApi, 'status' | 'registry' | 'metrics' | 'readiness' | 'uptimeS' | 'bundles' | 'health' | 'versions'>): Promise<HubStatusResponse> {
  const src = hub.status!
  const readiness = hub.readiness()
  const notReady: Record<string, string> = {}
  for (const [check, ok] of Object.entries(readiness.checks)) if (!ok) notReady[check] = readiness.reasons?.[check] ?? 'failing'
  const nodes = { ...Object.fromEntries(nodeStates.map((s) => [s, 0])), total: 0 } as HubStatusResponse['nodes']
  for (const n of hub.registry.list()) { nodes[n.state]++; nodes.total++ }
  const embedded = src.brokerKind === 'embedded'
  const round = (v: number | null) => (v === null ? null : Math.round(v))
  const manifest = hub.bundles?.manifest()
  return {
    hubId: src.hubId,
    phase: src.phase(),
    ready: readiness.ready,
    notReady,
    uptimeS: Math.round(hub.uptimeS()),
    versions: hub.versions ?? {},
    broker: {
      kind: src.brokerKind,
      uptimeS: embedded ? round(await metricValue(hub.metrics, 'mirrormesh_broker_uptime_seconds')) : null,
      clients: embedded ? await metricValue(hub.metrics, 'mirrormesh_broker_clients') : null,
      messages: embedded ? await metricValue(hub.metrics, 'mirrormesh_broker_messages_total') : null,
    },
    nodes,
    health: hub.health?.() ?? {},
    ...src.load(),
    bundle: manifest ? { version: manifest.version, createdAt: manifest.createdAt } : null,
    drain: src.drain(),
  }
}

export function statusRoutes(hub: Parameters<typeof collectStatus>[0] & Pick<HubApi, 'debug'>) {
  return async (app: FastifyInstance) => {
    app.get('/api/status', async (_req, reply) => {
      if (!hub.status) return reply.code(404).send({ error: 'not_found', message: 'status is not served by this hub' })
      const body = await collectStatus(hub)
      // Health reasons may name a model path: scrubbed as in bug bundles (status goes into them).
      return hub.debug ? reply.type('application/json').send(hub.debug.scrub(JSON.stringify(body))) : body
    })
  }
}

// /healthz (the process is up), /readyz (it should get traffic), /metrics (Prometheus).
import type { FastifyInstance } from 'fastify'
import type { HealthzResponse } from '@mirrormesh/broker'
import type { HubApi } from '../app.js'

export function probeRoutes(hub: Pick<HubApi, 'uptimeS' | 'readiness' | 'metrics'>) {
  return async (app: FastifyInstance) => {
    app.get('/healthz', async (): Promise<HealthzResponse> => ({ status: 'ok', uptimeS: Math.round(hub.uptimeS()) }))

    app.get('/readyz', async (_req, reply) => {
      const r = hub.readiness()
      return reply.code(r.ready ? 200 : 503).send(r)
    })

    app.get('/metrics', async (_req, reply) => {
      const body = await hub.metrics.metrics()
      return reply.type(hub.metrics.contentType).send(body)
    })
  }
}

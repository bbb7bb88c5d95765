// The node registry over HTTP (what `mirrormesh nodes` shows), heartbeat delay stats, and
// each node's config: GET/PUT /api/nodes/:id/config.
import type { FastifyInstance, FastifyReply } from 'fastify'
import type { ApiError, NodeConfigResponse, NodesResponse, NodeView } from '@mirrormesh/broker'
import type { HubApi, NodeConfigApi } from '../app.js'
import { idParams, notFound } from './common.js'

export function nodeRoutes(hub: Pick<HubApi, 'registry'>) {
  return async (app: FastifyInstance) => {
    app.get('/api/nodes', async (): Promise<NodesResponse> => ({ nodes: hub.registry.list() }))

    app.get<{ Params: { id: string } }>('/api/nodes/:id', { schema: { params: idParams } }, async (req, reply) => {
      const node: NodeView | undefined = hub.registry.get(req.params.id)
      if (!node) return reply.code(404).send(notFound(`no node ${req.params.id}`))
      return node
    })

    app.get('/api/stats/heartbeats', async () => hub.registry.delayStats())
    app.delete('/api/stats/heartbeats', async (_req, reply) => {
      hub.registry.delays.clear()
      return reply.code(204).send()
    })
  }
}

/**
 * GET/PUT /api/nodes/:id/config. PUT takes a partial update (room, name, wakeWord, volume, timeZone, clock)
 * and answers the whole config; 400 on a bad body, 404 for a node with no credential here.
 */
export function nodeConfigRoutes(api: NodeConfigApi | undefined) {
  return async (app: FastifyInstance) => {
    const answer = async (reply: FastifyReply, run: () => Promise<NodeConfigResponse>) => {
      if (!api) return reply.code(404).send(notFound('node config is not served by this hub'))
      try {
        return await run()
      } catch (err) {
        const code = (err as { code?: unknown }).code
        if (code === 'unknown_node') return reply.code(404).send({ error: 'unknown_node', message: (err as Error).message } satisfies ApiError)
        if (code === 'bad_config') return reply.code(400).send({ error: 'bad_config', message: (err as Error).message } satisfies ApiError)
        if (code === 'unavailable') return reply.code(503).send({ error: 'unavailable', message: (err as Error).message } satisfies ApiError)
        throw err
      }
    }
    app.get<{ Params: { id: string } }>('/api/nodes/:id/config', { schema: { params: idParams } }, (req, reply) => answer(reply, () => api!.get(req.params.id)))
    app.put<{ Params: { id: string } }>('/api/nodes/:id/config', { schema: { params: idParams } }, (req, reply) => answer(reply, () => api!.update(req.params.id, req.body)))
  }
}

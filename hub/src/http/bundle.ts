// The offline reply bundle nodes download (manifest + files), and the offline turns they
// replayed after an outage.
import { createReadStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import type { FastifyInstance } from 'fastify'
import type { OfflineTurnsResponse } from '@mirrormesh/broker'
import type { HubApi } from '../app.js'
import { notFound } from './common.js'

export function bundleRoutes(hub: Pick<HubApi, 'bundles' | 'offlineTurns'>) {
  return async (app: FastifyInstance) => {
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
    }, async (req): Promise<OfflineTurnsResponse> => ({ turns: hub.offlineTurns?.list(req.query.limit) ?? [] }))
  }
}

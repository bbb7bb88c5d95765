// The memory routes behind `mirrormesh memory list|export|forget <key>` (admin token on a LAN
// listener, like every /api route):
//   GET    /api/memory                  mode and size
//   GET    /api/memory/:key?limit&kind  newest first
//   GET    /api/memory/:key/export      every memory of the key
//   DELETE /api/memory/:key[?id=]       one memory, or all of the key
import type { FastifyInstance } from 'fastify'
import type { ApiError } from '@mirrormesh/broker'
import { isMemoryKey } from './keys.js'
import type { Memory } from './service.js'
import type { MemoryKind } from './types.js'

const EXPORT_MAX = 1_000_000

export function memoryRoutes(memory: () => Memory | undefined) {
  return async (app: FastifyInstance) => {
    const need = (key?: string): { m?: Memory; error?: [number, ApiError] } => {
      const m = memory()
      if (!m) return { error: [503, { error: 'unavailable', message: 'memory is off (MEMORY_ENABLED=false) or its store failed to open: see /readyz' }] }
      if (key !== undefined && !isMemoryKey(key)) return { error: [400, { error: 'bad_key', message: `memory keys look like room:kitchen, node:hall-1 or user:ana; got ${JSON.stringify(key.slice(0, 80))}` }] }
      return { m }
    }
    app.get('/api/memory', async (_req, reply) => {
      const { m, error } = need()
      if (!m) return reply.code(error![0]).send(error![1])
      return { mode: m.mode, ...(await m.store.stats()) }
    })
    app.get<{ Params: { key: string }; Querystring: { limit?: number; kind?: MemoryKind } }>('/api/memory/:key', {
      schema: { querystring: { type: 'object', additionalProperties: false, properties: { limit: { type: 'integer', minimum: 1, maximum: 10_000 }, kind: { enum: ['fact', 'turn'] } } } },
    }, async (req, reply) => {
      const { m, error } = need(req.params.key)
      if (!m) return reply.code(error![0]).send(error![1])
      return { key: req.params.key, memories: await m.store.list(req.params.key, req.query.limit ?? 50, req.query.kind) }
    })
    app.get<{ Params: { key: string } }>('/api/memory/:key/export', async (req, reply) => {
      const { m, error } = need(req.params.key)
      if (!m) return reply.code(error![0]).send(error![1])
      return { key: req.params.key, exportedAt: new Date().toISOString(), memories: await m.store.list(req.params.key, EXPORT_MAX) }
    })
    app.delete<{ Params: { key: string }; Querystring: { id?: string } }>('/api/memory/:key', {
      schema: { querystring: { type: 'object', additionalProperties: false, properties: { id: { type: 'string', minLength: 1, maxLength: 64 } } } },
    }, async (req, reply) => {
      const { m, error } = need(req.params.key)
      if (!m) return reply.code(error![0]).send(error![1])
      return { key: req.params.key, deleted: await m.store.delete(req.params.key, req.query.id) }
    })
  }
}

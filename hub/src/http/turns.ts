// POST /api/turns: a typed turn for a node ({node, text, user?}), answered once the turn has
// ended with what the node heard back. On a LAN listener it takes the admin token, or the
// node's own Basic credential for that node only (http/auth.ts lets the credential through and
// names the node; this route checks it is the node the turn is for).
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { ApiError } from '@mirrormesh/broker'
import type { TextTurnResult } from '../pipeline/turns.js'
import { nodeCredentialOf } from './auth.js'

export interface TextTurnApi {
  turn(nodeId: string, text: string, user?: string): Promise<TextTurnResult>
}

interface Body { node: string; text: string; user?: string }

const statusOf: Record<string, number> = { unknown_node: 404, unavailable: 503, bad_user: 400 }

export function turnRoutes(turns: TextTurnApi | undefined) {
  return async (app: FastifyInstance) => {
    app.post<{ Body: Body }>('/api/turns', {
      schema: {
        body: {
          type: 'object', additionalProperties: false, required: ['node', 'text'],
          properties: {
            node: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' },
            text: { type: 'string', minLength: 1, maxLength: 500, pattern: '\\S' },
            user: { type: 'string', minLength: 1, maxLength: 64 },
          },
        },
      },
    }, async (req: FastifyRequest<{ Body: Body }>, reply) => {
      if (!turns) return reply.code(404).send({ error: 'not_found', message: 'text turns need the voice pipeline (PIPELINE_ENABLED)' } satisfies ApiError)
      const asNode = nodeCredentialOf(req)
      if (asNode !== undefined && asNode !== req.body.node) {
        return reply.code(403).send({ error: 'forbidden', message: `node ${asNode}'s credential may only start turns on ${asNode}` } satisfies ApiError)
      }
      try {
        return await turns.turn(req.body.node, req.body.text, req.body.user)
      } catch (err) {
        const code = (err as { code?: string }).code ?? 'error'
        const status = statusOf[code]
        if (!status) throw err
        return reply.code(status).send({ error: code, message: (err as Error).message } satisfies ApiError)
      }
    })
  }
}

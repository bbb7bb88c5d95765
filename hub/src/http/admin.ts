// Admin routes for the operator's commands (backup now; node rebuild/identity in node-admin).
import type { FastifyInstance, FastifyReply } from 'fastify'
import type { ApiError, BackupRetainedResponse } from '@mirrormesh/broker'
import { NodeAdminError, type NodeAdminFeature } from '../features/node-admin.js'
import { idParams } from './common.js'
import type { EmbeddedBroker } from '@mirrormesh/broker/server'
import { collectRetained } from '@mirrormesh/broker/persistence'

export interface AdminApi {
  /** Export the embedded broker's retained messages for a backup of a running hub. */
  retained(): Promise<BackupRetainedResponse>
  /** Node rebuild (features/node-admin.ts). */
  readonly nodes?: Pick<NodeAdminFeature, 'rebuild' | 'moveIdentity'>
}

const statusOf: Record<NodeAdminError['code'], number> = { unknown_node: 404, bad_request: 400, conflict: 409, timeout: 504, failed: 502, unavailable: 503 }
const timeoutMs = { type: 'integer', minimum: 1000, maximum: 600_000 } as const

export function adminRoutes(admin: AdminApi | undefined) {
  return async (app: FastifyInstance) => {
    if (!admin) return
    // POST: it reads the whole retained store, nothing a crawler or a browser prefetch should trigger.
    app.post('/api/backup/retained', async (): Promise<BackupRetainedResponse> => admin.retained())

    const nodes = admin.nodes
    if (!nodes) return
    const fail = (reply: FastifyReply, err: unknown) => {
      if (!(err instanceof NodeAdminError)) throw err
      return reply.code(statusOf[err.code]).send({ error: err.code, message: err.message } satisfies ApiError)
    }
    // Both answer once the node has confirmed (or the timeout passed): the operator's command waits on them.
    app.post<{ Params: { id: string }; Body: { timeoutMs?: number } | undefined }>('/api/nodes/:id/rebuild', {
      schema: { params: idParams, body: { type: ['object', 'null'], properties: { timeoutMs }, additionalProperties: false } },
    }, async (req, reply) => {
      try {
        return await nodes.rebuild(req.params.id, req.body?.timeoutMs)
      } catch (err) {
        return fail(reply, err)
      }
    })
    app.post<{ Params: { id: string }; Body: { newId: string; timeoutMs?: number } }>('/api/nodes/:id/identity', {
      schema: { params: idParams, body: { type: 'object', required: ['newId'], properties: { newId: { type: 'string', maxLength: 64 }, timeoutMs }, additionalProperties: false } },
    }, async (req, reply) => {
      try {
        return await nodes.moveIdentity(req.params.id, req.body.newId, req.body.timeoutMs)
      } catch (err) {
        return fail(reply, err)
      }
    })
  }
}

/** The embedded broker's retained messages, read through its persistence (consistent while it runs). */
export async function exportRetained(embedded: EmbeddedBroker | undefined): Promise<BackupRetainedResponse> {
  const persistence = (embedded?.aedes as { persistence?: unknown } | undefined)?.persistence as Parameters<typeof collectRetained>[0] | undefined
  if (!persistence) return { retained: [], external: embedded === undefined }
  return { retained: await collectRetained(persistence), external: false }
}

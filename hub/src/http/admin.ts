// Admin routes for the operator's commands (backup now; node rebuild/identity in node-admin).
import type { FastifyInstance } from 'fastify'
import type { BackupRetainedResponse } from '@mirrormesh/broker'
import type { EmbeddedBroker } from '@mirrormesh/broker/server'
import { collectRetained } from '@mirrormesh/broker/persistence'

export interface AdminApi {
  /** Export the embedded broker's retained messages for a backup of a running hub. */
  retained(): Promise<BackupRetainedResponse>
}

export function adminRoutes(admin: AdminApi | undefined) {
  return async (app: FastifyInstance) => {
    if (!admin) return
    // POST: it reads the whole retained store, nothing a crawler or a browser prefetch should trigger.
    app.post('/api/backup/retained', async (): Promise<BackupRetainedResponse> => admin.retained())
  }
}

/** The embedded broker's retained messages, read through its persistence (consistent while it runs). */
export async function exportRetained(embedded: EmbeddedBroker | undefined): Promise<BackupRetainedResponse> {
  const persistence = (embedded?.aedes as { persistence?: unknown } | undefined)?.persistence as Parameters<typeof collectRetained>[0] | undefined
  if (!persistence) return { retained: [], external: embedded === undefined }
  return { retained: await collectRetained(persistence), external: false }
}

// Hub → node commands (nodes/{id}/cmd) and the node's confirmation (nodes/{id}/cmd/ack), for
// `mirrormesh node rebuild`. A new identity's password travels sealed: observers may read every
// topic, so it is encrypted with a key only the node's current password derives (credentials.ts).
import { z } from 'zod'
import { idPattern } from './ids.js'

const ts = z.number().int().positive().describe('sender wall clock, ms since epoch')
const envelope = { v: z.literal(1), ts }
const transaction = z.string().min(1).max(64).describe("the hub's id for this command, echoed in the ack")
const b64 = z.string().max(512).regex(/^[A-Za-z0-9+/=]*$/)

export const sealedSecret = z.object({
  cost: z.number().int().min(1024).max(1 << 20),
  salt: b64, iv: b64, data: b64, tag: b64,
})
export type SealedSecret = z.output<typeof sealedSecret>

export const nodeCmd = z.discriminatedUnion('op', [
  z.object({ ...envelope, transaction, op: z.literal('rebuild').describe('wipe the cache (bundle, cached config), resync and re-register') }),
  z.object({ ...envelope, transaction, op: z.literal('identity').describe('rebuild as a new node id'), id: z.string().regex(idPattern), password: sealedSecret }),
])
export type NodeCmd = z.output<typeof nodeCmd>

export const nodeCmdAck = z.object({
  ...envelope,
  transaction,
  op: z.enum(['rebuild', 'identity']),
  status: z.enum(['ok', 'error']),
  error: z.string().max(256).optional(),
})
export type NodeCmdAck = z.output<typeof nodeCmdAck>

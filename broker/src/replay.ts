// Offline-journal replay, request/response over MQTT (zigbee2mqtt bridge style):
//   node → nodes/{id}/request/replay   {v, ts, transaction, turns: [turn…]}
//   hub  → nodes/{id}/response/replay  {v, ts, transaction, status:'ok', data:{kept, duplicate, invalid}}
//                                      {v, ts, transaction, status:'error', error}
// The hub answers only once the kept turns are fsync'd; the node trims every id answered
// (kept, duplicate and invalid alike: a malformed entry must not be replayed forever), matches
// answers by transaction and ignores any other. The turn is declared once, here; the request
// carries turns loosely so that one bad turn is answered as invalid instead of the contract
// dropping the whole batch — the hub validates each with `offlineTurn`.
import { z } from 'zod'
import { houseAction } from './events.js'

const ts = z.number().int().positive().describe('sender wall clock, ms since epoch')
const envelope = { v: z.literal(1), ts }

/** Most turns in one replay request (the node also keeps a request under the topic's maxBytes). */
export const REPLAY_MAX_TURNS = 100
const turnIdSchema = z.string().min(1).max(128)
const transaction = z.string().min(1).max(64).describe("the caller's id for this request, echoed in the response")

/** A turn answered from the offline bundle while the hub was gone, as the node replays it. */
export const offlineTurn = z.object({
  id: turnIdSchema.describe('unique per node (the node journal\'s id); the hub keeps each once'),
  at: ts.describe('when the turn happened'),
  transcript: z.string().max(2000),
  reply: z.string().max(2000),
  skill: z.string().max(64).optional(),
  action: houseAction.optional().describe('house action the hub carries out late'),
})
export type OfflineTurnPayload = z.output<typeof offlineTurn>

export const replayRequest = z.object({
  ...envelope,
  transaction,
  // Each turn is checked by the hub on its own (offlineTurn), not here.
  turns: z.array(z.unknown()).min(1).max(REPLAY_MAX_TURNS),
})
export type ReplayRequest = z.output<typeof replayRequest>

export const replayResult = z.object({
  kept: z.array(turnIdSchema).max(REPLAY_MAX_TURNS).describe('new turns, now on the hub\'s disk'),
  duplicate: z.array(turnIdSchema).max(REPLAY_MAX_TURNS).describe('turns the hub already had'),
  invalid: z.array(z.object({ id: turnIdSchema, error: z.string().max(256) })).max(REPLAY_MAX_TURNS)
    .describe('turns the hub refused as malformed (and will never accept)'),
})
export type ReplayResult = z.output<typeof replayResult>

export const replayResponse = z.discriminatedUnion('status', [
  z.object({ ...envelope, transaction, status: z.literal('ok'), data: replayResult }),
  z.object({ ...envelope, transaction, status: z.literal('error'), error: z.string().max(256) }),
])
export type ReplayResponse = z.output<typeof replayResponse>

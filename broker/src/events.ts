// Every event that travels on nodes/{id}/events, declared once: a discriminated union on
// `type`. The hub sends turn progress and skill side effects to a node; the node sends its
// own measurements. Both sides import these types; the contract validates against them.
import { z } from 'zod'
import { idPattern } from './ids.js'

const ts = z.number().int().positive().describe('sender wall clock, ms since epoch')
const envelope = { v: z.literal(1), ts }
const turnId = z.number().int().nonnegative().max(0xffffffff).describe('the turn, as numbered by the node in its audio frames')
const text = z.string().max(4000)

export const replyKinds = ['skill', 'llm', 'unavailable', 'none', 'busy'] as const
export type ReplyKind = (typeof replyKinds)[number]

/** A house action (light on/off…) decided by a skill: what actions/{component} carries. */
export const houseAction = z.object({
  component: z.string().regex(idPattern),
  action: z.string().min(1).max(64),
  room: z.string().max(64).nullable(),
  state: z.string().max(64).optional(),
})
export type HouseAction = z.output<typeof houseAction>

const ev = <T extends string, S extends z.ZodRawShape>(type: T, shape: S) =>
  z.object({ ...envelope, type: z.literal(type), ...shape })

/** hub → node */
export const hubEventSchemas = {
  /** What the hub heard. */
  transcript: ev('transcript', { turnId, text }),
  /** The reply so far, sent as each sentence starts playing (the mirror shows it while it talks). */
  reply_partial: ev('reply_partial', { turnId, text }),
  /** The whole reply, once all its audio has gone out. */
  reply: ev('reply', { turnId, text, kind: z.enum(replyKinds), audio: z.boolean() }),
  turn_error: ev('turn_error', { turnId, reason: z.string().max(64) }),
  /** No session slot free (or draining): the node hears "busy". */
  busy: ev('busy', { turnId }),
  timer_done: ev('timer_done', { label: z.string().max(128).optional() }),
  volume: ev('volume', { change: z.enum(['up', 'down']).optional(), level: z.number().int().min(0).max(100).optional() }),
  /** Another mirror of the room heard the same request louder and answers it: stop listening, show who. */
  arbitrated: ev('arbitrated', { turnId, winner: z.string().max(64) }),
  /** Stop playing now ("stop" skill). */
  stop: ev('stop', {}),
}

/** node → hub */
export const nodeEventSchemas = {
  /** The node's own TTFA: end of speech → first reply sample played. */
  ttfa: ev('ttfa', { turnId, ms: z.number().nonnegative().max(600_000), kind: z.string().max(16) }),
  /** The turn was opened by the wake word, with this detector score (0–1): the hub's arbitration prefers the higher. */
  wake: ev('wake', { turnId, score: z.number().min(0).max(1) }),
}

const all = { ...hubEventSchemas, ...nodeEventSchemas }
type AllSchemas = typeof all

export const nodeEvent = z.discriminatedUnion('type', Object.values(all) as unknown as [AllSchemas[keyof AllSchemas], ...AllSchemas[keyof AllSchemas][]])
export type NodeEventType = keyof AllSchemas
export type NodeEvent = z.output<typeof nodeEvent>
export type NodeEventOf<T extends NodeEventType> = z.output<AllSchemas[T]>
export type HubEvent = { [K in keyof typeof hubEventSchemas]: z.output<(typeof hubEventSchemas)[K]> }[keyof typeof hubEventSchemas]
export type NodeOwnEvent = { [K in keyof typeof nodeEventSchemas]: z.output<(typeof nodeEventSchemas)[K]> }[keyof typeof nodeEventSchemas]
/** An event as a producer writes it: the publisher adds `v` and `ts`. */
export type EventBody<E> = E extends unknown ? Omit<E, 'v' | 'ts'> : never

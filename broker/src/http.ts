// The hub's HTTP API on the wire: what each route answers, beside the MQTT contract, so
// the hub, the operator CLI and dashboards share one definition.
import { z } from 'zod'
import { schemas, type NodeHeartbeat, type Payload } from './contract.js'
import type { OfflineTurnPayload } from './replay.js'

export const nodeStates = ['online', 'recovering', 'stale', 'offline'] as const
export type NodeState = (typeof nodeStates)[number]

/** GET /api/nodes/:id, and each entry of GET /api/nodes. */
export interface NodeView {
  id: string
  state: NodeState
  stateSince: number
  status: 'online' | 'offline' | 'unknown'
  mode: NodeHeartbeat['mode'] | null
  lastHeartbeatAt: number | null
  heartbeatAgeMs: number | null
  /** Node clock minus hub clock at receipt (ms); includes transit time, which is small on a LAN. */
  clockSkewMs: number | null
  seq: number | null
  uptimeS: number | null
  cpuPct: number | null
  memPct: number | null
  temperatureC: number | null
  versions: Record<string, string>
  room: string | null
  presence: Payload<'nodePresence'> | null
}

/** GET /api/nodes */
export interface NodesResponse { nodes: NodeView[] }

/** GET /healthz: the process is up. */
export interface HealthzResponse { status: 'ok'; uptimeS: number }

/**
 * GET /readyz (200 ready, 503 not): one boolean per check; a failed feature is a check
 * named after it, with its reason under `reasons`.
 */
export interface ReadinessResponse {
  ready: boolean
  checks: Record<string, boolean>
  reasons?: Record<string, string>
  /** How a component runs when it has modes (memory: "embedded, keyword + hashed n-gram vectors …"). */
  modes?: Record<string, string>
}

/** Every 4xx/5xx body: a stable code and a sentence for people. */
export interface ApiError { error: string; message: string }

/** POST /api/drain */
export interface DrainResponse { status: 'draining' }

/** GET /api/stats/heartbeats */
export interface HeartbeatStatsResponse {
  samples: number
  total: number
  p50Ms: number
  p95Ms: number
  p99Ms: number
  maxMs: number
}

/** One replayed offline turn, as GET /api/offline-turns lists them (newest first). */
export type OfflineTurnView = OfflineTurnPayload & {
  nodeId: string
  /** When the hub received it (ms). */
  receivedAt: number
}
export interface OfflineTurnsResponse { turns: OfflineTurnView[] }

// Node config: the retained nodes/{id}/config payload without its envelope.
const { room, name, wakeWord, volume, timeZone, clock } = schemas.nodeConfig.shape
/** PUT /api/nodes/:id/config body: a partial update; null clears room/wake word. */
export const nodeConfigPatch = z.strictObject({ room, name, wakeWord, volume, timeZone, clock })
export type NodeConfigPatch = z.output<typeof nodeConfigPatch>
export type NodeConfigValues = NodeConfigPatch

/** GET and PUT /api/nodes/:id/config */
export interface NodeConfigResponse {
  id: string
  config: NodeConfigValues
  /** When the hub last changed it (ms since epoch); null: never configured. */
  updatedAt: number | null
}

/** A drain as the hub tracks it: what was running when it began, and how it ended. */
export interface DrainView {
  reason: string
  /** When the drain began (ms since epoch). */
  startedAt: number
  /** DRAIN_TIMEOUT_MS: the longest the drain waits for running turns. */
  timeoutMs: number
  /** Turns running or queued when the drain began (new ones hear "busy"). */
  turnsAtStart: number
  /** Set once the running turns ended or the timeout passed; the hub stops right after. */
  result?: {
    /** Turns that ended on their own during the drain. */
    finished: number
    /** Turns still running at the timeout: the stop aborts them. */
    cutOff: number
    endedAt: number
  }
}

/** POST /api/drain?wait=true: answered once running turns ended (or DRAIN_TIMEOUT_MS passed). */
export interface DrainedResponse { status: 'drained'; drain: DrainView }

/** GET /api/status: one screen of what the hub is doing (`mirrormesh status`). */
export interface HubStatusResponse {
  hubId: string
  phase: 'starting' | 'ready' | 'draining' | 'stopping' | 'stopped'
  /** What /readyz says (200 = true). */
  ready: boolean
  /** Checks of /readyz that are failing, with their reasons where known. */
  notReady: Record<string, string>
  uptimeS: number
  versions: Record<string, string>
  broker: {
    kind: 'embedded' | 'external'
    /** Embedded broker only (null with MQTT_URL). */
    uptimeS: number | null
    clients: number | null
    messages: number | null
  }
  nodes: Record<NodeState, number> & { total: number }
  /** health/{component} as published: engines (asr, tts, llm, vad), broker, mqtt, bundle, failed features. */
  health: Record<string, { state: 'ok' | 'degraded' | 'down'; reason?: string }>
  sessions: number
  queueDepth: number
  /** The offline reply bundle announced to nodes; null while building or when off. */
  bundle: { version: string; createdAt: string } | null
  drain: DrainView | null
}

/** One hub log record (pino JSON) as the debug routes return it; `pii` is never included. */
export type LogRecord = Record<string, unknown> & { time: number; level: number; msg?: string }

/** GET /api/debug/turns/:id[?node=]: the bug bundle's evidence for one turn. */
export interface TurnDebugResponse {
  turnId: number
  nodeId: string | null
  /** Records that carry this turn id (and node id, when asked). */
  records: LogRecord[]
  /** Records from `contextMs` before the first to `contextMs` after the last (turn records included), oldest first. */
  context: LogRecord[]
  contextMs: number
  /** How many records the hub keeps, and since when (older ones are gone). */
  ring: { capacity: number; size: number; oldest: number | null }
  health: Record<string, { state: 'ok' | 'degraded' | 'down'; reason?: string }>
  versions: Record<string, string>
  /** Names of the hub settings set in its environment; never their values. */
  settingsSet: string[]
}
/** POST /api/backup/retained: the embedded broker's retained messages (payload base64). `external`: the hub uses MQTT_URL, whose broker keeps its own. */
export interface BackupRetainedResponse { retained: Array<{ topic: string; qos: 0 | 1 | 2; payload: string }>; external: boolean }

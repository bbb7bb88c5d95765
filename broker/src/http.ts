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
const { room, name, wakeWord, volume } = schemas.nodeConfig.shape
/** PUT /api/nodes/:id/config body: a partial update; null clears room/wake word. */
export const nodeConfigPatch = z.strictObject({ room, name, wakeWord, volume })
export type NodeConfigPatch = z.output<typeof nodeConfigPatch>
export type NodeConfigValues = NodeConfigPatch

/** GET and PUT /api/nodes/:id/config */
export interface NodeConfigResponse {
  id: string
  config: NodeConfigValues
  /** When the hub last changed it (ms since epoch); null: never configured. */
  updatedAt: number | null
}

/** POST /api/backup/retained: the embedded broker's retained messages (payload base64). `external`: the hub uses MQTT_URL, whose broker keeps its own. */
export interface BackupRetainedResponse { retained: Array<{ topic: string; qos: 0 | 1 | 2; payload: string }>; external: boolean }

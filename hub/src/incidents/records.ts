// One incident record, two views: each record is one JSON line in <stateDir>/incidents/
// YYYY-MM-DD.jsonl (machines: bundles, scripts) and one Markdown entry in <stateDir>/entries/
// YYYY-MM-DD-runbook.md (people), both for the UTC day the incident began.

/** What the hub saw that confirmed recovery, as metric-like readings (name → value). */
export type Recovery = Record<string, string | number | boolean | null>

interface Base {
  /** When the record was written (ms since the epoch). */
  at: number
  /** When the incident began; its UTC day names the files. */
  start: number
  /** When it ended; null: still going when the hub stopped. */
  end: number | null
  durationMs: number | null
  recovery: Recovery
}

/** A node left `online` and came back; going down again within the settle window is the same incident. */
export interface NodeOutage extends Base {
  type: 'node_outage'
  nodeId: string
  /** Times the node went down during this incident (1: a plain outage; more: it flapped). */
  downs: number
  /** The non-online states it was seen in (offline: Last Will or clean stop; stale: heartbeats stopped). */
  states: string[]
}

/** The hub started again: `clean` when the previous run stopped itself (drain/SIGTERM). */
export interface HubRestart extends Base {
  type: 'hub_restart'
  clean: boolean
  previousStart: number
  /** Last sign of life of the previous run (its stop, or its last alive mark). */
  lastAliveAt: number
}

/** The hub's own MQTT client lost the broker and got it back. */
export interface BrokerOutage extends Base {
  type: 'broker_outage'
  /** An external broker (MQTT_URL) rather than the embedded one. */
  external: boolean
}

/** Fallback steps taken by one stage for one reason, with no quiet gap longer than the settle window. */
export interface FallbackBurst extends Base {
  type: 'fallback_burst'
  stage: string
  reason: string
  /** from→to engine steps seen. */
  steps: string[]
  count: number
}

export type IncidentRecord = NodeOutage | HubRestart | BrokerOutage | FallbackBurst

/** The UTC day (YYYY-MM-DD) of a time. */
export const utcDay = (ms: number): string => new Date(ms).toISOString().slice(0, 10)

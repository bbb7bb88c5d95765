// Incidents: node outages (flaps coalesced), hub restarts (clean or not), broker connection
// outages and fallback bursts become records in <stateDir>/incidents/YYYY-MM-DD.jsonl and runbook
// entries in <stateDir>/entries/YYYY-MM-DD-runbook.md, written by the hub itself (incidents/*).
// A failing disk never stops the hub: the store logs it and retries.
import type { Registry } from 'prom-client'
import type { Feature, Logger } from '@mirrormesh/broker'
import type { HubConfig } from '../config.js'
import type { NodeRegistry, NodeState, NodeView } from '../registry.js'
import { FallbackBursts } from '../incidents/fallbacks.js'
import { HubRunFile, type PreviousRun } from '../incidents/hub-run.js'
import { NodeOutages } from '../incidents/outages.js'
import type { IncidentRecord, Recovery } from '../incidents/records.js'
import { IncidentStore } from '../incidents/store.js'
import type { MqttFeature } from './mqtt.js'

/** How often a running hub refreshes its alive mark (what an unclean restart reports as last alive). */
const ALIVE_EVERY_MS = 10_000

export class IncidentsFeature implements Feature {
  readonly name = 'incidents'
  readonly store: IncidentStore
  private readonly outages: NodeOutages
  private readonly fallbacks: FallbackBursts
  private readonly run: HubRunFile
  private readonly startedAt = Date.now()
  private previous: PreviousRun | null = null
  private aliveTimer: NodeJS.Timeout | undefined
  private brokerDownSince: number | null = null
  private wasConnected = false
  private readonly onState = (view: NodeView, from: NodeState | null) => this.outages.state(view, from)

  constructor(
    private readonly config: HubConfig,
    private readonly mqtt: MqttFeature,
    private readonly registry: NodeRegistry,
    private readonly metrics: Registry,
    private readonly log: Logger,
  ) {
    const settleMs = config.incidentSettleMs
    this.store = new IncidentStore({ stateDir: config.stateDir, log })
    this.run = new HubRunFile(config.stateDir)
    this.outages = new NodeOutages({ settleMs, onRecord: (r) => this.record(r), recovery: (id) => this.nodeRecovery(id) })
    this.fallbacks = new FallbackBursts({ metrics, settleMs, pollMs: Math.min(5000, Math.max(100, Math.floor(settleMs / 4))),
      onRecord: (r) => this.record(r), recovery: (stage) => this.engineRecovery(stage) })
  }

  async start(): Promise<void> {
    this.previous = await this.run.previous()
    await this.markAlive()
    this.aliveTimer = setInterval(() => void this.markAlive(), ALIVE_EVERY_MS)
    this.aliveTimer.unref()
    // The restart entry is written once the hub's own client is connected (the recovery it can
    // confirm), not later: a hub in a crash loop must still leave one entry per restart.
    if (this.previous) this.mqtt.onConnect(() => this.recordRestart())
    this.registry.on('state', this.onState)
    const client = this.mqtt.client
    client?.on('disconnect', this.onDisconnect)
    client?.on('connect', this.onConnect)
    this.wasConnected = this.mqtt.connected
    await this.fallbacks.start()
  }

  async stop(): Promise<void> {
    this.registry.off('state', this.onState)
    this.mqtt.client?.off('disconnect', this.onDisconnect)
    this.mqtt.client?.off('connect', this.onConnect)
    clearInterval(this.aliveTimer)
    this.recordRestart() // not connected before the stop: still worth an entry
    this.outages.stop()
    if (this.brokerDownSince !== null) this.brokerRecord(null)
    await this.fallbacks.stop()
    await this.store.stop()
    await this.run.write({ pid: process.pid, startedAt: this.startedAt, aliveAt: Date.now(), stoppedAt: Date.now() })
      .catch((err: Error) => this.log.error({ err: err.message }, 'hub-run marker not written: the next start will report an unclean restart'))
  }

  private record(r: IncidentRecord): void {
    this.log.info({ incident: r.type, start: r.start, end: r.end, durationMs: r.durationMs }, 'incident recorded')
    void this.store.add(r)
  }

  private async markAlive(): Promise<void> {
    await this.run.write({ pid: process.pid, startedAt: this.startedAt, aliveAt: Date.now() })
      .catch((err: Error) => this.log.warn({ err: err.message }, 'hub-run marker not refreshed'))
  }

  private recordRestart(): void {
    const p = this.previous
    if (!p) return
    this.previous = null
    this.record({
      type: 'hub_restart', clean: p.clean, previousStart: p.startedAt, lastAliveAt: p.lastAliveAt,
      at: Date.now(), start: p.lastAliveAt, end: this.startedAt, durationMs: this.startedAt - p.lastAliveAt,
      recovery: { ...this.meshReadings(), 'seconds from start to connected': Number(((Date.now() - this.startedAt) / 1000).toFixed(1)) },
    })
  }

  private readonly onDisconnect = (): void => {
    if (!this.wasConnected) return
    this.wasConnected = false
    this.brokerDownSince = Date.now()
  }

  private readonly onConnect = (): void => {
    this.wasConnected = true
    if (this.brokerDownSince !== null) this.brokerRecord(Date.now())
  }

  private brokerRecord(end: number | null): void {
    const start = this.brokerDownSince!
    this.brokerDownSince = null
    this.record({ type: 'broker_outage', external: this.config.mqttUrl !== undefined, at: Date.now(), start, end,
      durationMs: end === null ? null : end - start, recovery: end === null ? {} : this.meshReadings() })
  }

  private meshReadings(): Recovery {
    const nodes = this.registry.list()
    return {
      'mqtt connected': this.mqtt.connected,
      'mirrormesh_nodes{state="online"}': nodes.filter((n) => n.state === 'online').length,
      'nodes known': nodes.length,
    }
  }

  private nodeRecovery(id: string): Recovery {
    const n = this.registry.get(id)
    return {
      state: n?.state ?? null,
      'mirrormesh_node_heartbeat_age_seconds': n?.heartbeatAgeMs == null ? null : Number((n.heartbeatAgeMs / 1000).toFixed(2)),
      'mirrormesh_node_clock_skew_seconds': n?.clockSkewMs == null ? null : Number((n.clockSkewMs / 1000).toFixed(3)),
      'online for (s)': n ? Math.round((Date.now() - n.stateSince) / 1000) : null,
    }
  }

  private async engineRecovery(stage: string): Promise<Recovery> {
    const out: Recovery = {}
    const metric = this.metrics.getSingleMetric('mirrormesh_engine_health')
    if (metric) {
      for (const v of (await metric.get()).values) {
        const engine = String(v.labels.engine ?? '')
        if (engine.startsWith(`${stage}:`)) out[`mirrormesh_engine_health{engine="${engine}"}`] = v.value
      }
    }
    return out
  }
}

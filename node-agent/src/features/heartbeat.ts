// The node's own heartbeat: every HEARTBEAT_INTERVAL_MS, at once when its mode changes, on
// every (re)connect and when its room changes. The board (cpu, memory, temperature) is
// sampled every fifth beat: systeminformation costs a few ms per read on a Pi.
import { createRequire } from 'node:module'
import type { Feature, MeshClient, Registry } from '@mirrormesh/broker'
import type * as PromClient from 'prom-client'
import type { AgentConfig } from '../config.js'
import { buildHeartbeat, sampleBoard, type BoardSample } from '../heartbeat.js'
import type { NodeStateMachine } from '../state.js'
import type { ConfigFeature } from './config.js'
import type { MqttFeature } from './mqtt.js'

const pkg = createRequire(import.meta.url)('../../package.json') as { version: string }
export const agentVersions: Record<string, string> = { agent: pkg.version, node: process.versions.node }

export class HeartbeatFeature implements Feature {
  readonly name = 'heartbeat'
  private timer: NodeJS.Timeout | undefined
  private seq = 0
  private board: BoardSample = { cpuPct: null, memPct: null, temperatureC: null }
  private readonly startedAt = Date.now()
  private readonly beat = (): void => this.publish()

  private readonly onSettings = (_now: unknown, changed: readonly string[]): void => { if (changed.includes('room')) this.publish() }

  constructor(private readonly deps: { config: AgentConfig; client: MeshClient; mqtt: MqttFeature; state: NodeStateMachine; settings: ConfigFeature; metrics?: Registry; muted?: () => boolean }) {
    if (deps.metrics) this.registerMetrics(deps.metrics)
  }

  /** The same board figures on the agent's own /metrics (its local port), for a Prometheus on the mirror's LAN. */
  private registerMetrics(reg: Registry): void {
    // Gauge alone, not prom-client's index (see broker/src/metrics.ts: memory on a Pi).
    const Gauge = createRequire(import.meta.url)('prom-client/lib/gauge') as typeof PromClient.Gauge
    const self = this
    const gauge = (name: string, help: string, read: () => number | null) => new Gauge({ name, help, registers: [reg],
      collect() { const v = read(); if (v === null) this.reset(); else this.set(v) } })
    gauge('mirrormesh_agent_cpu_percent', 'This node\'s CPU use (last board sample), percent', () => self.board.cpuPct)
    gauge('mirrormesh_agent_temperature_celsius', 'This node\'s board temperature (last sample)', () => self.board.temperatureC)
    gauge('mirrormesh_agent_rss_bytes', 'The agent\'s resident memory', () => process.memoryUsage.rss())
  }

  start(): void {
    const { config, mqtt, state } = this.deps
    state.on('state', this.beat) // tell the hub our mode at once
    mqtt.on('ready', this.beat)
    this.deps.settings.on('change', this.onSettings) // the hub's registry shows a new room at once
    void this.refreshBoard()
    this.timer = setInterval(() => {
      this.publish()
      if (this.seq % 5 === 0) void this.refreshBoard()
    }, config.heartbeatIntervalMs)
  }

  publish(): void {
    const { client, config, state, settings } = this.deps
    if (!client.connected) return
    const hb = buildHeartbeat(this.seq++, state.state, this.board, agentVersions, this.startedAt, settings.settings.room)
    client.publish('nodeHeartbeat', { node: config.nodeId }, { ...hb, muted: this.deps.muted?.() ?? false }).catch(() => undefined)
  }

  private async refreshBoard(): Promise<void> {
    this.board = await sampleBoard(true)
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer)
    this.timer = undefined
    this.deps.state.off('state', this.beat)
    this.deps.mqtt.off('ready', this.beat)
    this.deps.settings.off('change', this.onSettings)
  }
}

// Retained health/{component} for dashboards and the runbook
// (`mosquitto_sub -t 'mirrormesh/health/#' -v`): polled every HEALTH_INTERVAL_MS and on
// every feature state change, published when a component changes and on every connect.
// A feature that failed to start is `down` under its own name, with the reason.
import type { Feature, FeatureHost, Logger } from '@mirrormesh/broker'
import type { MqttFeature } from './mqtt.js'

export interface ComponentHealth { state: 'ok' | 'degraded' | 'down'; reason?: string }
/** Gives the health of some components, by name. */
export type HealthSource = () => Record<string, ComponentHealth | undefined>
/** The bit of the MQTT feature health needs. */
export type HealthPublisher = Pick<MqttFeature, 'onConnect' | 'publish'>

export class HealthFeature implements Feature {
  readonly name = 'health'
  private last = new Map<string, ComponentHealth>()
  private timer: NodeJS.Timeout | undefined
  private readonly onFeatureState = () => this.check()

  constructor(
    private readonly intervalMs: number,
    private readonly mqtt: HealthPublisher,
    private readonly host: FeatureHost,
    private readonly sources: HealthSource[],
    private readonly log: Logger,
  ) {}

  start(): void {
    this.host.on('state', this.onFeatureState)
    this.mqtt.onConnect(() => this.publishAll())
    this.timer = setInterval(() => this.check(), this.intervalMs)
    this.timer.unref()
  }

  stop(): void {
    this.host.off('state', this.onFeatureState)
    if (this.timer) clearInterval(this.timer)
  }

  /** Every component's health now. */
  current(): Record<string, ComponentHealth> {
    const out: Record<string, ComponentHealth> = {}
    for (const source of this.sources) {
      for (const [name, h] of Object.entries(source())) if (h) out[name] = h
    }
    for (const s of this.host.states()) {
      if (s.state === 'failed') out[s.name] = { state: 'down', reason: s.reason ?? 'failed to start' }
    }
    return out
  }

  /** Publishes the components whose health changed since the last check. */
  check(): void {
    const now = this.current()
    for (const [name, h] of Object.entries(now)) {
      const before = this.last.get(name)
      if (before?.state === h.state && before.reason === h.reason) continue
      this.last.set(name, h)
      if (before) this.log.info({ component: name, from: before.state, to: h.state, reason: h.reason }, 'component health changed')
      void this.publish(name, h)
    }
  }

  private async publishAll(): Promise<void> {
    this.last = new Map(Object.entries(this.current()))
    await Promise.all([...this.last].map(([name, h]) => this.publish(name, h)))
  }

  private publish(name: string, h: ComponentHealth): Promise<void> {
    const reason = h.reason?.slice(0, 256)
    return this.mqtt.publish('health', { component: name }, { v: 1, ts: Date.now(), state: h.state, ...(reason ? { reason } : {}) })
  }
}

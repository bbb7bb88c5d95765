// The hub's own presence: retained hub status and heartbeat on every connect and on a
// timer, and the retained clients/online list, debounced so a reconnect wave publishes once.
import { loadavg } from 'node:os'
import type { Feature, HubState } from '@mirrormesh/broker'
import type { HubConfig } from '../config.js'
import type { NodeRegistry } from '../registry.js'
import { versions } from '../version.js'
import type { MqttFeature } from './mqtt.js'

/** What the heartbeat reports about the voice pipeline. */
export interface HubLoad {
  sessions: number
  queueDepth: number
  engines: Record<string, 'ok' | 'degraded' | 'down'>
}

export class PresenceFeature implements Feature {
  readonly name = 'presence'
  private heartbeatTimer: NodeJS.Timeout | undefined
  private clientsOnlineTimer: NodeJS.Timeout | undefined
  private seq = 0
  private readonly onState = () => this.scheduleClientsOnline()

  constructor(
    private readonly config: HubConfig,
    private readonly mqtt: MqttFeature,
    private readonly registry: NodeRegistry,
    private readonly state: () => HubState,
    private readonly load: () => HubLoad,
    private readonly startedAt: number,
    /** Fallback steps by stage since start (hub heartbeat `fallbacks`); absent without a voice pipeline. */
    private readonly fallbacks: () => Promise<Record<string, number> | undefined> = async () => undefined,
  ) {}

  start(): void {
    this.registry.on('state', this.onState)
    this.mqtt.onConnect(async () => {
      await this.publishStatus()
      this.publishHeartbeat()
    })
    this.heartbeatTimer = setInterval(() => this.publishHeartbeat(), this.config.heartbeatIntervalMs)
  }

  stop(): void {
    this.registry.off('state', this.onState)
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer)
    if (this.clientsOnlineTimer) clearTimeout(this.clientsOnlineTimer)
  }

  publishStatus(): Promise<void> {
    return this.mqtt.publish('hubStatus', { hub: this.config.hubId }, this.state())
  }

  private publishHeartbeat(): void {
    if (!this.mqtt.connected) return
    void this.fallbacks().catch(() => undefined).then((fallbacks) => this.mqtt.publish('hubHeartbeat', { hub: this.config.hubId }, {
      v: 1,
      ts: Date.now(),
      seq: this.seq++,
      uptimeS: Math.round((Date.now() - this.startedAt) / 1000),
      load: loadavg()[0] ?? 0,
      ...this.load(),
      nodesOnline: this.registry.online().length,
      versions,
      role: this.config.hubRole,
      ...(fallbacks ? { fallbacks } : {}),
    }))
  }

  private scheduleClientsOnline(): void {
    if (this.clientsOnlineTimer) return
    this.clientsOnlineTimer = setTimeout(() => {
      this.clientsOnlineTimer = undefined
      if (!this.mqtt.connected) return
      const nodes = this.registry.online().map((n) => ({ id: n.id, room: n.room, since: n.stateSince, version: n.versions.agent ?? null }))
      void this.mqtt.publish('clientsOnline', {}, { v: 1, ts: Date.now(), nodes })
    }, 250)
  }
}

// The embedded aedes broker (critical), or the external one named by MQTT_URL. Either way
// it settles where the hub's own MQTT client connects.
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import type { Registry } from 'prom-client'
import type { CredentialStore, Feature, Logger } from '@mirrormesh/broker'
import { EmbeddedBroker } from '@mirrormesh/broker/server'
import type { HubConfig } from '../config.js'
import type { ComponentHealth } from './health.js'

export interface BrokerConnection { url: string; username?: string; password?: string }

export class BrokerFeature implements Feature {
  readonly name = 'broker'
  readonly critical = true
  embedded: EmbeddedBroker | undefined
  /** Where the hub's own client connects; set by start(). */
  connection: BrokerConnection | undefined

  constructor(
    private readonly config: HubConfig,
    private readonly credentials: CredentialStore,
    private readonly metrics: Registry,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    const { config } = this
    await this.credentials.refresh()
    if (config.mqttUrl) {
      this.connection = { url: config.mqttUrl, username: config.mqttUsername, password: config.mqttPassword }
      return
    }
    // The hub reaches its own embedded broker with a per-process credential that never touches disk.
    const username = `hub-${config.hubId}`
    const password = randomBytes(24).toString('base64url')
    this.embedded = new EmbeddedBroker({
      base: config.baseTopic,
      host: config.mqttHost,
      port: config.mqttPort,
      wsPort: config.mqttWsEnabled ? config.mqttWsPort : undefined,
      tls: config.mqttTlsCert && config.mqttTlsKey ? { host: config.mqttTlsHost, port: config.mqttTlsPort, certPath: config.mqttTlsCert, keyPath: config.mqttTlsKey } : undefined,
      persistenceDir: config.brokerPersistence ? join(config.stateDir, 'broker-db') : undefined,
      credentials: this.credentials,
      internalUsers: [{ username, password, role: 'hub' }],
      registry: this.metrics,
      log: this.log,
    })
    const addr = await this.embedded.start()
    const host = addr.host === '0.0.0.0' || addr.host === '::' ? '127.0.0.1' : addr.host
    this.connection = { url: `mqtt://${host}:${addr.port}`, username, password }
  }

  async stop(): Promise<void> {
    await this.embedded?.stop()
  }

  /** Embedded: is it listening. External: undefined (the MQTT connection tells). */
  health(): ComponentHealth | undefined {
    if (!this.embedded) return undefined
    return this.embedded.listening ? { state: 'ok' } : { state: 'down', reason: 'embedded broker not listening' }
  }
}

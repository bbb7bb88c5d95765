// The node's own MQTT connection (critical: without it the node is nothing to the mesh).
// Last Will `offline`; on every connect: status `online` (retained), subscribe to every
// contract topic some feature handles, then 'ready'. Inbound payloads are validated at the
// boundary and routed by contract topic to the features.
import { EventEmitter } from 'node:events'
import { InboundValidator, MeshClient, filterFor, redactUrl, topicFor, type Feature, type FeatureHost, type Logger, type Message, type Registry } from '@mirrormesh/broker'
import type { AgentConfig } from '../config.js'
import { TLS_TRUST_CODES } from '../offline/hub-fetch.js'
import type { NodeStateMachine } from '../state.js'

export interface MqttEvents {
  /** Connected, announced online and subscribed: a good moment to publish a heartbeat. */
  ready: []
}

export class MqttFeature extends EventEmitter<MqttEvents> implements Feature {
  readonly name = 'mqtt'
  readonly critical = true
  readonly client: MeshClient

  constructor(private readonly deps: { config: AgentConfig; host: FeatureHost; state: NodeStateMachine; metrics: Registry; log: Logger }) {
    super()
    const { config, log } = deps
    this.client = new MeshClient({
      url: config.mqttUrl,
      base: config.baseTopic,
      clientId: `node-${config.nodeId}`,
      username: config.mqttUsername,
      password: config.mqttPassword,
      keepaliveS: config.mqttKeepaliveS,
      // Gentler growth than the default: a hub restart on a LAN is back within seconds, a long outage still caps at 30 s.
      backoff: { initialMs: 300, factor: 1.5, minMs: 100, maxMs: 30_000 },
      will: { name: 'nodeStatus', params: { node: config.nodeId }, payload: 'offline' },
      // mqtts:// checks the hub's certificate (and its name) against MQTT_CA.
      ...(config.mqttCa ? { mqtt: { ca: config.mqttCa } } : {}),
      log: log.child({ component: 'mqtt' }),
    })
  }

  start(): void {
    const { config, host, state, metrics, log } = this.deps
    const validator = new InboundValidator(config.baseTopic, metrics, log.child({ component: 'inbound' }))
    // Every hub's status and heartbeat: the node follows whichever hub nodes/{id}/assign names.
    const params = { node: config.nodeId }
    const filters = host.topics().map((name) => filterFor(config.baseTopic, name, params))
    this.client.on('connect', () => void this.announce(filters))
    this.client.on('disconnect', () => state.onBrokerLost())
    this.client.on('message', (topic, payload) => {
      const msg = validator.accept(topic, payload)
      if (msg) host.route(msg as Message)
    })
    this.client.start()
    // The raw error says "unable to verify the first certificate"; say once what fixes it.
    let hinted = false
    this.client.client?.on('error', (err) => {
      const code = (err as { code?: unknown }).code
      if (hinted || typeof code !== 'string' || !TLS_TRUST_CODES.test(code)) return
      hinted = true
      log.error({ url: redactUrl(config.mqttUrl), code, mqttCa: config.mqttCa ? 'set' : 'unset' },
        'the hub\'s TLS certificate is not trusted: set MQTT_CA to the hub\'s ca.pem (from `mirrormesh tls init`) and use a name in MQTT_URL the certificate was made for')
    })
  }

  private async announce(filters: string[]): Promise<void> {
    try {
      await this.client.publish('nodeStatus', { node: this.deps.config.nodeId }, 'online')
      await this.client.subscribe(filters)
      this.deps.state.onBrokerConnected()
      this.emit('ready')
    } catch (err) {
      this.deps.log.warn({ err }, 'announce/subscribe failed')
    }
  }

  async stop(): Promise<void> {
    const { config } = this.deps
    const statusTopic = topicFor(config.baseTopic, 'nodeStatus', { node: config.nodeId })
    await this.client.stop([{ topic: statusTopic, payload: 'offline', qos: 1, retain: true }])
  }
}

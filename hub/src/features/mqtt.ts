// The hub's own MQTT client (critical): Last Will on hub status, subscribes to every
// contract topic some feature handles, validates each message at the boundary and hands
// it to the feature host. Other features publish through it and hook its (re)connects.
import type { Registry } from 'prom-client'
import {
  InboundValidator, MeshClient, filterFor, getOrCreateCounter, topicFor,
  type Feature, type FeatureHost, type Logger, type Message, type Payload, type TopicName, type TopicParams,
} from '@mirrormesh/broker'
import type { HubConfig } from '../config.js'
import type { BrokerFeature } from './broker.js'

export class MqttFeature implements Feature {
  readonly name = 'mqtt'
  readonly critical = true
  client: MeshClient | undefined
  /** True once the subscriptions of the current connection are granted. */
  subscribed = false
  private readonly hooks: (() => void | Promise<void>)[] = []
  /** Topics outside the contract (homeassistant/status) with their handlers: never validated as contract messages. */
  private readonly raw = new Map<string, (payload: Buffer) => void>()

  constructor(
    private readonly config: HubConfig,
    private readonly broker: BrokerFeature,
    private readonly host: FeatureHost,
    private readonly metrics: Registry,
    private readonly log: Logger,
  ) {}

  /** Subscribe to one exact topic outside the contract (now if connected, and on every reconnect). */
  onRaw(topic: string, fn: (payload: Buffer) => void): void {
    this.raw.set(topic, fn)
    if (this.subscribed) this.client?.subscribe([topic]).catch((err: unknown) => this.log.warn({ err, topic }, 'subscribe failed; will retry on reconnect'))
  }

  /** Runs `fn` after every (re)connect once subscribed, and now if already so. */
  onConnect(fn: () => void | Promise<void>): void {
    this.hooks.push(fn)
    if (this.subscribed) void this.run(fn)
  }

  get connected(): boolean {
    return this.client?.connected === true
  }

  start(): void {
    const { config, log } = this
    const conn = this.broker.connection
    if (!conn) throw new Error('broker connection unknown (the broker feature did not start)')
    const validator = new InboundValidator(config.baseTopic, this.metrics, log.child({ component: 'inbound' }))
    const received = getOrCreateCounter(this.metrics, 'mirrormesh_hub_messages_received_total', 'Messages the hub received, by topic kind', ['topic'])
    const client = new MeshClient({
      url: conn.url,
      base: config.baseTopic,
      clientId: `hub-${config.hubId}`,
      username: conn.username,
      password: conn.password,
      keepaliveS: config.mqttKeepaliveS,
      will: { name: 'hubStatus', params: { hub: config.hubId }, payload: 'offline' },
      log: log.child({ component: 'mqtt' }),
    })
    this.client = client
    client.on('message', (topic, payload) => {
      const rawFn = this.raw.get(topic)
      if (rawFn) return rawFn(payload)
      const msg = validator.accept(topic, payload)
      if (!msg) return
      received.inc({ topic: msg.name })
      this.host.route(msg as Message)
    })
    client.on('connect', () => void this.announce())
    client.on('disconnect', () => { this.subscribed = false })
    client.start()
  }

  /** Publish a contract message if connected; a lost message is not worth an error here. */
  publish<N extends TopicName>(name: N, params: TopicParams, data: Payload<N>): Promise<void> {
    return this.client?.publish(name, params, data).catch(() => undefined) ?? Promise.resolve()
  }

  async stop(): Promise<void> {
    // A clean disconnect discards the Last Will: say offline ourselves.
    const statusTopic = topicFor(this.config.baseTopic, 'hubStatus', { hub: this.config.hubId })
    await this.client?.stop([{ topic: statusTopic, payload: 'offline', qos: 1, retain: true }])
    this.subscribed = false
  }

  private async announce(): Promise<void> {
    try {
      await this.client!.subscribe([...this.host.topics().map((n) => filterFor(this.config.baseTopic, n)), ...this.raw.keys()])
      this.subscribed = true
    } catch (err) {
      this.log.warn({ err }, 'hub subscribe failed; will retry on reconnect')
      return
    }
    for (const fn of this.hooks) await this.run(fn)
  }

  private async run(fn: () => void | Promise<void>): Promise<void> {
    try {
      await fn()
    } catch (err) {
      this.log.warn({ err }, 'on-connect announce failed; will retry on reconnect')
    }
  }
}

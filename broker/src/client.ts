// mqtt.js wrapper every process uses: Last Will, jittered exponential reconnect capped
// at 30 s, typed publish against the contract. Works with the embedded broker or any
// external one (Mosquitto, EMQX) given as a URL.
import { EventEmitter } from 'node:events'
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import { Backoff, defaultBackoffOptions, type BackoffOptions } from './backoff.js'
import { encode, topicFor, topics, type Payload, type TopicName, type TopicParams, type TopicDef } from './contract.js'
import type { Logger } from './log.js'

export interface MeshClientOptions {
  url: string
  base: string
  clientId: string
  username?: string
  password?: string
  /** Last Will: a contract topic and the payload the broker publishes if we vanish. */
  will?: { name: TopicName; params: TopicParams; payload: string }
  /** MQTT keepalive; the broker drops a silent client after 1.5× this. */
  keepaliveS?: number
  backoff?: BackoffOptions
  /** Extra mqtt.js options (TLS CA and such). */
  mqtt?: Partial<IClientOptions>
  log: Logger
}

export interface MeshClientEvents {
  connect: []
  disconnect: []
  message: [topic: string, payload: Buffer]
}

export class MeshClient extends EventEmitter<MeshClientEvents> {
  client: MqttClient | undefined
  private readonly backoff: Backoff
  private timer: NodeJS.Timeout | undefined
  private stopping = false
  private wasConnected = false

  constructor(private readonly opts: MeshClientOptions) {
    super()
    this.backoff = new Backoff(opts.backoff ?? defaultBackoffOptions)
  }

  get connected(): boolean {
    return this.client?.connected === true
  }

  /** Starts connecting; resolves at once. Reconnects by itself until stop(). */
  start(): void {
    const { opts } = this
    const will = opts.will
    const client = mqtt.connect(opts.url, {
      clientId: opts.clientId,
      username: opts.username,
      password: opts.password,
      protocolVersion: 4, // aedes speaks MQTT 3.1.1 only
      clean: true,
      keepalive: opts.keepaliveS ?? 10,
      connectTimeout: 5_000,
      reconnectPeriod: 0, // we schedule reconnects ourselves, with jitter
      queueQoSZero: false, // stale heartbeats are worse than none
      // mqtt-packet otherwise pre-builds 65 536 two-byte Buffers on the first write: ~6 MB of
      // heap for every process (it is a per-process switch, shared with aedes in the hub).
      // Writing a number allocates 2 bytes instead; no measurable cost per packet.
      writeCache: false,
      will: will && { topic: topicFor(opts.base, will.name, will.params), payload: Buffer.from(will.payload), qos: topics[will.name].qos, retain: topics[will.name].retain },
      ...opts.mqtt,
    })
    this.client = client
    // The first error after losing the broker is news; the same error on every retry is not.
    let lastError = ''
    client.on('connect', () => {
      noDelay(client)
      lastError = ''
      this.backoff.reset()
      this.wasConnected = true
      opts.log.info({ url: redactUrl(opts.url) }, 'mqtt connected')
      this.emit('connect')
    })
    client.on('message', (topic, payload) => this.emit('message', topic, payload))
    client.on('error', (err) => {
      const level = err.message === lastError ? 'debug' : 'warn'
      lastError = err.message
      opts.log[level]({ err: err.message, code: (err as { code?: unknown }).code }, 'mqtt error')
    })
    client.on('close', () => {
      if (this.wasConnected) {
        this.wasConnected = false
        opts.log.warn('mqtt connection lost')
        this.emit('disconnect')
      }
      this.scheduleReconnect()
    })
    client.on('offline', () => { if (this.wasConnected) { this.wasConnected = false; this.emit('disconnect') } })
  }

  private scheduleReconnect(): void {
    if (this.stopping || this.timer) return
    const delay = this.backoff.next()
    this.opts.log.debug({ delayMs: delay }, 'mqtt reconnect scheduled')
    this.timer = setTimeout(() => {
      this.timer = undefined
      if (!this.stopping) this.client?.reconnect()
    }, delay)
    this.timer.unref?.()
  }

  async subscribe(filters: string[]): Promise<void> {
    if (!this.client) throw new Error('client not started')
    const granted = await this.client.subscribeAsync(filters, { qos: 1 })
    const refused = granted.filter((g) => g.qos === 128).map((g) => g.topic)
    if (refused.length) throw new Error(`subscription refused by broker: ${refused.join(', ')}`)
  }

  /** Publish a contract message; QoS and retain come from the contract. Resolves when sent (QoS 1: acknowledged). */
  publish<N extends TopicName>(name: N, params: TopicParams, data: Payload<N>): Promise<void> {
    const def: TopicDef = topics[name]
    return this.publishRaw(topicFor(this.opts.base, name, params), encode(name, data), def.qos, def.retain)
  }

  publishRaw(topic: string, payload: Buffer | string, qos: 0 | 1, retain: boolean): Promise<void> {
    const client = this.client
    if (!client?.connected) return Promise.reject(new Error('not connected'))
    return new Promise((resolve, reject) => client.publish(topic, payload, { qos, retain }, (err) => (err ? reject(err) : resolve())))
  }

  /**
   * Clean stop: publish `final` messages (e.g. status offline) if connected, then disconnect.
   * A clean disconnect discards the Last Will, so `final` is how others learn we left.
   */
  async stop(final: Array<{ topic: string; payload: string; qos: 0 | 1; retain: boolean }> = []): Promise<void> {
    this.stopping = true
    if (this.timer) clearTimeout(this.timer)
    const client = this.client
    if (!client) return
    if (client.connected) {
      await Promise.race([
        Promise.all(final.map((m) => this.publishRaw(m.topic, m.payload, m.qos, m.retain).catch(() => undefined))),
        new Promise((r) => setTimeout(r, 2_000)),
      ])
    }
    // A graceful end waits for every in-flight QoS 1 message to be acknowledged; one lost with a
    // connection the broker closed (a takeover) never is, and stop() hung forever. Force after 2 s.
    const graceful = client.endAsync(!client.connected).catch(() => undefined)
    const timer = new Promise<'late'>((r) => setTimeout(() => r('late'), 2_000).unref())
    if ((await Promise.race([graceful, timer])) === 'late') await client.endAsync(true).catch(() => undefined)
  }
}

/** mqtt.js does not disable Nagle; small latency-bound messages need it off. */
export function noDelay(client: MqttClient): void {
  const stream = client.stream as { setNoDelay?: (v: boolean) => void } | undefined
  stream?.setNoDelay?.(true)
}

export function redactUrl(url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:[redacted]@')
}

// Features under a thin root (zigbee2mqtt's extensions): each long-lived part of a process
// declares the contract topics it handles and has start/stop. The host starts them in
// order, routes inbound messages by contract topic, and isolates failures: a feature that
// throws at start is logged and reported (health, /readyz) while the rest keep running;
// only `critical` ones (the broker, the process's own MQTT client) stop start-up.
import { EventEmitter } from 'node:events'
import type { Payload, TopicName, TopicParams } from './contract.js'
import { LogLimiter, type Logger } from './log.js'

/** A validated inbound message for one contract topic. */
export interface Message<N extends TopicName = TopicName> {
  name: N
  params: TopicParams
  data: Payload<N>
}

export type Handlers = { [N in TopicName]?: (msg: Message<N>) => void }

export interface Feature {
  /** Component name: logs, health/{component}, /readyz. */
  readonly name: string
  /** Contract topics this feature handles, each with its handler. */
  readonly handlers?: Handlers
  /** A failure to start stops the process (broker, own MQTT client); others are isolated. */
  readonly critical?: boolean
  start?(): Promise<void> | void
  stop?(): Promise<void> | void
}

export type FeatureState = 'starting' | 'running' | 'failed' | 'stopped'
export interface FeatureStatus { name: string; state: FeatureState; reason?: string }

export interface FeatureHostEvents {
  /** A feature changed state (started, failed, stopped). */
  state: [status: FeatureStatus]
}

export class FeatureHost extends EventEmitter<FeatureHostEvents> {
  private readonly list: Feature[] = []
  private readonly status = new Map<string, FeatureStatus>()
  private readonly routes = new Map<TopicName, { feature: Feature; fn: (msg: Message) => void }[]>()
  private readonly logOnce = new LogLimiter(60_000)
  private stopping = false
  private startRun: Promise<void> | undefined

  constructor(private readonly log: Logger) {
    super()
  }

  /** Adds a feature (not started yet). Returns it, typed, for the root to keep. */
  add<F extends Feature>(feature: F): F {
    if (this.status.has(feature.name)) throw new Error(`feature ${feature.name} added twice`)
    this.list.push(feature)
    this.status.set(feature.name, { name: feature.name, state: 'stopped' })
    for (const [name, fn] of Object.entries(feature.handlers ?? {}) as [TopicName, (msg: Message) => void][]) {
      if (!fn) continue
      const list = this.routes.get(name) ?? []
      list.push({ feature, fn })
      this.routes.set(name, list)
    }
    return feature
  }

  /** Contract topics some feature handles: what the root subscribes to. */
  topics(): TopicName[] {
    return [...this.routes.keys()]
  }

  /**
   * Starts every feature in the order added. Throws only if a critical one fails. A stop()
   * meanwhile (SIGTERM during start-up) ends it early: no feature starts after the stop.
   */
  start(): Promise<void> {
    this.startRun = (async () => {
      for (const f of this.list) {
        if (this.stopping) return
        await this.startOne(f)
      }
    })()
    return this.startRun
  }

  /** True once stop() was called: a root's start() must not declare itself ready after it. */
  get stopped(): boolean {
    return this.stopping
  }

  /** Starts one feature added after start() (or restarts a failed one). */
  async startOne(f: Feature): Promise<void> {
    this.set(f, 'starting')
    try {
      await f.start?.()
      this.set(f, 'running')
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err)
      this.set(f, 'failed', reason)
      if (f.critical) throw err
      this.log.error({ err, feature: f.name }, 'feature failed to start; the others keep running')
    }
  }

  /** Stops every feature, last started first; a stop that throws is logged and skipped. */
  async stop(): Promise<void> {
    this.stopping = true
    // A feature still starting finishes first, then is stopped with the rest.
    await this.startRun?.catch(() => undefined)
    for (const f of [...this.list].reverse()) {
      const s = this.status.get(f.name)
      if (s?.state === 'stopped') continue
      try {
        await f.stop?.()
      } catch (err) {
        this.log.warn({ err, feature: f.name }, 'feature failed to stop cleanly')
      }
      this.set(f, 'stopped')
    }
  }

  /** Hands a validated message to every running feature that handles its topic. Never throws. */
  route(msg: Message): void {
    const list = this.routes.get(msg.name)
    if (!list) return
    for (const { feature, fn } of list) {
      if (this.status.get(feature.name)?.state !== 'running') continue
      try {
        fn(msg)
      } catch (err) {
        if (this.logOnce.allow(`${feature.name}:${msg.name}`)) this.log.error({ err, feature: feature.name, topic: msg.name }, 'feature handler threw; message skipped')
      }
    }
  }

  /** Marks a running feature failed (or recovered) from the outside, e.g. a lost engine. */
  report(name: string, state: 'running' | 'failed', reason?: string): void {
    const f = this.list.find((x) => x.name === name)
    if (f) this.set(f, state, reason)
  }

  states(): FeatureStatus[] {
    return this.list.map((f) => this.status.get(f.name)!)
  }

  get(name: string): FeatureStatus | undefined {
    return this.status.get(name)
  }

  private set(f: Feature, state: FeatureState, reason?: string): void {
    const prev = this.status.get(f.name)
    const next: FeatureStatus = reason === undefined ? { name: f.name, state } : { name: f.name, state, reason }
    this.status.set(f.name, next)
    if (prev?.state !== state || prev.reason !== reason) this.emit('state', next)
  }
}

// Composition root: embedded broker (or external MQTT_URL), MQTT client, registry,
// hub status + heartbeat, HTTP API. start()/stop()/drain().
import { randomBytes } from 'node:crypto'
import { loadavg } from 'node:os'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { Registry, collectDefaultMetrics, Counter } from 'prom-client'
import type { FastifyInstance } from 'fastify'
import {
  CredentialStore, InboundValidator, MeshClient, filterFor, topicFor,
  type EventBody, type HubEvent, type HubState, type Logger, type NodeEvent, type ReplayRequest, type TopicName,
} from '@mirrormesh/broker'
import { EmbeddedBroker } from '@mirrormesh/broker/server'
import { buildApp } from './app.js'
import type { HubConfig } from './config.js'
import { createPipeline, type Pipeline } from './pipeline/index.js'
import type { TurnIo } from './pipeline/turns.js'
import { NodeRegistry } from './registry.js'
import { versions } from './version.js'
import { EspeakTts } from '@mirrormesh/speech'
import { BundleService } from './bundle/service.js'
import { OfflineTurnLog } from './bundle/journal.js'
import { builtinSkills } from './pipeline/skills.js'

export type HubPhase = 'starting' | 'ready' | 'draining' | 'stopping' | 'stopped'

export class Hub {
  readonly metrics = new Registry()
  readonly registry: NodeRegistry
  readonly credentials: CredentialStore
  broker: EmbeddedBroker | undefined
  client: MeshClient | undefined
  app: FastifyInstance | undefined
  httpAddress: { host: string; port: number } | undefined
  phase: HubPhase = 'starting'
  private subscribed = false
  private heartbeatTimer: NodeJS.Timeout | undefined
  private heartbeatSeq = 0
  private readonly startedAt = Date.now()
  private clientsOnlineTimer: NodeJS.Timeout | undefined
  private stopPromise: Promise<void> | undefined
  pipeline: Pipeline | undefined
  bundles: BundleService | undefined
  offlineTurns: OfflineTurnLog | undefined
  private weather: { summary: string; temperatureC?: number } | null = null
  private readonly timers = new Set<NodeJS.Timeout>()
  /** Resolves once the hub has fully stopped (after stop() or a drain). */
  readonly stopped: Promise<void>
  private resolveStopped!: () => void

  constructor(readonly config: HubConfig, private readonly log: Logger) {
    this.credentials = new CredentialStore(config.credentialsFile)
    this.registry = new NodeRegistry({ staleMs: config.nodeStaleMs, metrics: this.metrics, log: log.child({ component: 'registry' }) })
    this.stopped = new Promise((r) => { this.resolveStopped = r })
  }

  async start(): Promise<void> {
    const { config, log } = this
    collectDefaultMetrics({ register: this.metrics })
    await mkdir(config.stateDir, { recursive: true })
    await this.credentials.refresh()

    let url = config.mqttUrl
    let username = config.mqttUsername
    let password = config.mqttPassword
    if (!url) {
      // The hub reaches its own embedded broker with a per-process credential that never touches disk.
      username = `hub-${config.hubId}`
      password = randomBytes(24).toString('base64url')
      this.broker = new EmbeddedBroker({
        base: config.baseTopic,
        host: config.mqttHost,
        port: config.mqttPort,
        wsPort: config.mqttWsEnabled ? config.mqttWsPort : undefined,
        tls: config.mqttTlsCert && config.mqttTlsKey ? { port: config.mqttTlsPort, certPath: config.mqttTlsCert, keyPath: config.mqttTlsKey } : undefined,
        persistenceDir: config.brokerPersistence ? join(config.stateDir, 'broker-db') : undefined,
        credentials: this.credentials,
        internalUsers: [{ username, password, role: 'hub' }],
        registry: this.metrics,
        log,
      })
      const addr = await this.broker.start()
      const host = addr.host === '0.0.0.0' || addr.host === '::' ? '127.0.0.1' : addr.host
      url = `mqtt://${host}:${addr.port}`
    }

    const validator = new InboundValidator(config.baseTopic, this.metrics, log.child({ component: 'inbound' }))
    const received = new Counter({ name: 'mirrormesh_hub_messages_received_total', help: 'Messages the hub received, by topic kind', labelNames: ['topic'], registers: [this.metrics] })
    const client = new MeshClient({
      url,
      base: config.baseTopic,
      clientId: `hub-${config.hubId}`,
      username,
      password,
      keepaliveS: config.mqttKeepaliveS,
      will: { name: 'hubStatus', params: { hub: config.hubId }, payload: 'offline' },
      log: log.child({ component: 'mqtt' }),
    })
    this.client = client
    client.on('message', (topic, payload) => {
      const msg = validator.accept(topic, payload)
      if (!msg) return
      received.inc({ topic: msg.name })
      if (msg.name === 'nodeAudioIn') return this.pipeline?.turns.onAudio(msg.params.node!, msg.data as Buffer)
      if (msg.name === 'weather') {
        this.weather = msg.data as { summary: string; temperatureC?: number }
        return
      }
      if (msg.name === 'nodeReplayRequest') return void this.offlineTurns?.handle(msg.params.node!, msg.data as ReplayRequest)
      if (msg.name === 'nodeEvents') {
        const ev = msg.data as NodeEvent
        if (ev.type === 'ttfa') this.pipeline?.turns.onNodeTtfa(msg.params.node!, ev)
      }
      this.registry.handle(msg.name, msg.params, msg.data)
    })
    if (config.pipelineEnabled) this.pipeline = await createPipeline(config, this.turnIo(), this.metrics, log)
    client.on('connect', () => void this.onConnect())
    client.on('disconnect', () => { this.subscribed = false })
    this.registry.on('state', () => this.scheduleClientsOnline())
    this.offlineTurns = new OfflineTurnLog({ stateDir: config.stateDir, metrics: this.metrics, log: log.child({ component: 'offline-turns' }), io: {
      respond: (nodeId, res) => void this.client?.publish('nodeReplayResponse', { node: nodeId }, res).catch(() => undefined),
      act: (component, a) => void this.client?.publish('action', { component }, { v: 1, ts: Date.now(), ...a }).catch(() => undefined),
    } })
    await this.offlineTurns.start()
    this.registry.on('state', (view, from) => this.offlineTurns?.nodeState(view, from))
    if (config.pipelineEnabled && config.bundleEnabled) {
      this.bundles = new BundleService({
        stateDir: config.stateDir, skills: builtinSkills(), rooms: config.rooms.split('|').map((r) => r.trim().toLowerCase()).filter(Boolean),
        tts: new EspeakTts({ voice: config.espeakVoice, speedWpm: config.espeakSpeedWpm }), voice: `espeak:${config.espeakVoice}:${config.espeakSpeedWpm}`,
        client, weather: () => this.weather, log: log.child({ component: 'bundle' }),
      })
    }
    this.registry.start()
    client.start()

    this.app = buildApp({
      registry: this.registry,
      metrics: this.metrics,
      readiness: () => this.readiness(),
      uptimeS: () => (Date.now() - this.startedAt) / 1000,
      drain: (reason) => void this.drain(reason),
      bundles: this.bundles,
      offlineTurns: this.offlineTurns,
    })
    await this.app.listen({ host: config.httpHost, port: config.httpPort })
    const addr = this.app.server.address()
    this.httpAddress = { host: config.httpHost, port: typeof addr === 'object' && addr ? addr.port : config.httpPort }
    this.heartbeatTimer = setInterval(() => this.publishHeartbeat(), config.heartbeatIntervalMs)
    this.phase = 'ready'
    this.bundles?.start() // background: never delays start-up or /readyz
    log.info({ http: this.httpAddress, mqtt: this.broker?.address ?? { url: '(external)' }, hubId: config.hubId }, 'hub started')
  }

  readiness(): { ready: boolean; checks: Record<string, boolean> } {
    const p = this.pipeline
    const checks = {
      broker: this.broker ? this.broker.listening : true,
      llm: p && p.llmConfigured ? p.llm.health() !== 'down' : true,
      mqttConnected: this.client?.connected === true,
      registrySubscribed: this.subscribed,
      notDraining: this.phase === 'ready',
    }
    return { ready: Object.values(checks).every(Boolean), checks }
  }

  private status(): HubState {
    return this.phase === 'draining' ? 'draining' : 'online'
  }

  private async onConnect(): Promise<void> {
    const { config } = this
    const client = this.client!
    try {
      const names: TopicName[] = ['nodeStatus', 'nodeHeartbeat', 'nodePresence', 'nodeEvents', 'nodeReplayRequest', 'weather']
      if (this.pipeline) names.push('nodeAudioIn')
      await client.subscribe(names.map((n) => filterFor(config.baseTopic, n)))
      this.subscribed = true
      await client.publish('hubStatus', { hub: config.hubId }, this.status())
      this.publishHeartbeat()
    } catch (err) {
      this.log.warn({ err }, 'hub subscribe/announce failed; will retry on reconnect')
    }
  }

  private publishHeartbeat(): void {
    const client = this.client
    if (!client?.connected) return
    client.publish('hubHeartbeat', { hub: this.config.hubId }, {
      v: 1,
      ts: Date.now(),
      seq: this.heartbeatSeq++,
      uptimeS: Math.round((Date.now() - this.startedAt) / 1000),
      load: loadavg()[0] ?? 0,
      sessions: this.pipeline?.turns.active ?? 0,
      queueDepth: this.pipeline?.turns.queued ?? 0,
      nodesOnline: this.registry.online().length,
      engines: this.pipeline?.health() ?? {},
      versions,
    }).catch(() => undefined)
  }

  /** What the pipeline may do to the outside world: publish audio, events and house actions. */
  private turnIo(): TurnIo {
    const base = this.config.baseTopic
    const send = (nodeId: string, event: EventBody<HubEvent>) => {
      this.client?.publish('nodeEvents', { node: nodeId }, { v: 1, ts: Date.now(), ...event } as NodeEvent).catch(() => undefined)
    }
    return {
      sendAudio: (nodeId, frame) => {
        this.client?.publishRaw(topicFor(base, 'nodeAudioOut', { node: nodeId }), frame, 0, false).catch(() => undefined)
      },
      sendEvent: send,
      room: (nodeId) => this.registry.get(nodeId)?.room ?? null,
      skillEnv: (nodeId) => ({
        nodeId,
        now: new Date(),
        act: (component, a) => {
          this.client?.publish('action', { component }, { v: 1, ts: Date.now(), ...a, nodeId }).catch(() => undefined)
        },
        notify: (event) => send(nodeId, event),
        weather: () => this.weather,
        setTimer: (ms, label) => {
          const t = setTimeout(() => { this.timers.delete(t); send(nodeId, { type: 'timer_done', label }) }, ms)
          t.unref()
          this.timers.add(t)
        },
      }),
    }
  }

  /** The retained list of online nodes, debounced so a reconnect wave publishes once. */
  private scheduleClientsOnline(): void {
    if (this.clientsOnlineTimer) return
    this.clientsOnlineTimer = setTimeout(() => {
      this.clientsOnlineTimer = undefined
      if (!this.client?.connected) return
      const nodes = this.registry.online().map((n) => ({ id: n.id, room: n.room, since: n.stateSince, version: n.versions.agent ?? null }))
      this.client.publish('clientsOnline', {}, { v: 1, ts: Date.now(), nodes }).catch(() => undefined)
    }, 250)
  }

  /** Safe restart: say draining, fail /readyz, let running turns end (bounded), then stop. */
  async drain(reason: string): Promise<void> {
    if (this.phase !== 'ready') return
    this.phase = 'draining'
    this.log.info({ reason, timeoutMs: this.config.drainTimeoutMs }, 'hub draining')
    await this.client?.publish('hubStatus', { hub: this.config.hubId }, 'draining').catch(() => undefined)
    // New turns hear "busy"; running ones finish, bounded by DRAIN_TIMEOUT_MS.
    await this.pipeline?.turns.drain(this.config.drainTimeoutMs)
    await this.stop()
  }

  stop(): Promise<void> {
    this.stopPromise ??= this.doStop()
    return this.stopPromise
  }

  private async doStop(): Promise<void> {
    this.phase = 'stopping'
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer)
    if (this.clientsOnlineTimer) clearTimeout(this.clientsOnlineTimer)
    this.registry.stop()
    for (const t of this.timers) clearTimeout(t)
    const statusTopic = topicFor(this.config.baseTopic, 'hubStatus', { hub: this.config.hubId })
    await this.client?.stop([{ topic: statusTopic, payload: 'offline', qos: 1, retain: true }])
    await this.bundles?.stop()
    await this.app?.close()
    await this.offlineTurns?.close()
    await this.broker?.stop()
    await this.pipeline?.close()
    this.phase = 'stopped'
    this.log.info('hub stopped')
    this.resolveStopped()
  }
}

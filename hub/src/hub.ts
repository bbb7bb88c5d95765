// Composition root: builds the hub's features from config and starts them through the
// shared FeatureHost, which routes inbound messages by contract topic. Only the broker and
// the hub's own MQTT client stop start-up; any other feature that fails is logged,
// reported on health/{component} and /readyz, and the rest keep serving.
import { mkdir } from 'node:fs/promises'
import { Registry, collectDefaultMetrics } from 'prom-client'
import { type DrainView, CredentialStore, FeatureHost, SdNotifier, SystemdFeature, type Feature, type SystemdEnv, type HubState, type Logger, type ReadinessResponse } from '@mirrormesh/broker'
import type { HubConfig } from './config.js'
import { NodeRegistry } from './registry.js'
import { AssignmentFeature } from './features/assignment.js'
import { BrokerFeature } from './features/broker.js'
import type { BundleService } from './bundle/service.js'
import { BundleFeature } from './features/bundle.js'
import { stageHealth } from './features/engine-health.js'
import { HealthFeature, type HealthSource } from './features/health.js'
import { HttpFeature } from './features/http.js'
import { IncidentsFeature } from './features/incidents.js'
import { MqttFeature } from './features/mqtt.js'
import { NodeConfigFeature } from './features/node-config.js'
import { OfflineTurnsFeature } from './features/offline-turns.js'
import { PresenceFeature } from './features/presence.js'
import { RegistryFeature } from './features/registry.js'
import { VoiceFeature } from './features/voice.js'
import { WeatherFeature } from './features/weather.js'
import type { DebugSource } from './http/debug.js'
import { versions } from './version.js'
import { StateLockFeature } from './features/state-lock.js'
import { NodeAdminFeature } from './features/node-admin.js'
import { exportRetained } from './http/admin.js'
import { MemoryFeature } from './features/memory.js'
import { TextTurnsFeature } from './features/text-turns.js'
import { HaDiscoveryFeature } from './features/ha-discovery.js'
import { PairCodes } from './http/pair.js'
import { fallbacksByStage } from './pipeline/metrics.js'

export type HubPhase = 'starting' | 'ready' | 'draining' | 'stopping' | 'stopped'

export interface HubOptions {
  /** Extra features started after the built-in ones (tests, plugins); failures are isolated like any other. */
  features?: Feature[]
  /** systemd's notify socket and watchdog (main.ts: systemdFromEnv); without it nothing is sent. */
  systemd?: SystemdEnv
  /** Recent log lines and setting names for bug bundles (main.ts); without it GET /api/debug/* answers 404. */
  debug?: DebugSource
}

/**
 * With the embedded broker, a hub whose own MQTT client stays disconnected this long is wedged:
 * its watchdog pings stop and systemd restarts it. Long enough for the client's reconnects (backoff
 * capped at 30 s) to ride out a blip. With an external broker (MQTT_URL) a lost connection never
 * stops the pings: restarting the hub cannot bring that broker back, and a restart every minute
 * would spend the unit's StartLimitBurst and leave the hub failed after the broker returns.
 */
export const HUB_WATCHDOG_GRACE_MS = 60_000

export class Hub {
  readonly metrics = new Registry()
  readonly registry: NodeRegistry
  readonly credentials: CredentialStore
  readonly host: FeatureHost
  /** HUB_ROLE active/standby: which hub serves which node. */
  readonly assignment: AssignmentFeature | undefined
  phase: HubPhase = 'starting'
  /** Resolves once the hub has fully stopped (after stop() or a drain). */
  readonly stopped: Promise<void>
  private resolveStopped!: () => void
  private stopPromise: Promise<void> | undefined
  private readonly startedAt = Date.now()
  private drainInfo: { view: DrainView; done: Promise<DrainView>; end: (v: DrainView) => void } | undefined
  private readonly f: {
    broker: BrokerFeature
    mqtt: MqttFeature
    weather: WeatherFeature
    offlineTurns: OfflineTurnsFeature
    voice?: VoiceFeature
    memory?: MemoryFeature
    nodeConfig: NodeConfigFeature
    http: HttpFeature
    bundle?: BundleFeature
    presence: PresenceFeature
    health: HealthFeature
    systemd: SystemdFeature
  }

  constructor(readonly config: HubConfig, private readonly log: Logger, opts: HubOptions = {}) {
    this.credentials = new CredentialStore(config.credentialsFile)
    this.registry = new NodeRegistry({ staleMs: config.nodeStaleMs, metrics: this.metrics, log: log.child({ component: 'registry' }) })
    this.stopped = new Promise((r) => { this.resolveStopped = r })
    const host = this.host = new FeatureHost(log)
    const child = (component: string) => log.child({ component })

    // Order matters: features that handle messages start before the MQTT client connects
    // (retained status arrives at once); those that publish through it start after it.
    const broker = host.add(new BrokerFeature(config, this.credentials, this.metrics, log))
    const mqtt = new MqttFeature(config, broker, host, this.metrics, log)
    host.add(new RegistryFeature(this.registry))
    const weather = host.add(new WeatherFeature())
    const offlineTurns = host.add(new OfflineTurnsFeature(config, mqtt, this.metrics, child('offline-turns')))
    const voice = config.pipelineEnabled ? host.add(new VoiceFeature(config, mqtt, this.registry, weather, this.metrics, log)) : undefined
    // After voice: it puts its stage into the pipeline voice has built.
    const memory = voice && config.memoryEnabled ? host.add(new MemoryFeature(config, () => voice.pipeline, this.metrics, child('memory'))) : undefined
    const textTurns = voice ? host.add(new TextTurnsFeature(() => voice.pipeline, this.registry, child('text-turns'))) : undefined
    // HUB_ROLE active/standby: several hubs on one broker split the nodes (retained nodes/{id}/assign).
    if (config.hubRole !== 'solo') {
      this.assignment = host.add(new AssignmentFeature(config, mqtt, (n) => voice?.idle(n) ?? true, () => this.state(), {
        gained: (node, _from, fromAlive) => { if (!fromAlive) voice?.adopt(node) },
      }, child('assignment')))
      const serves = (n: string) => this.assignment!.serves(n)
      if (voice) voice.serves = serves
      offlineTurns.serves = serves
      if (textTurns) textTurns.serves = serves
    }
    const nodeConfig = host.add(new NodeConfigFeature(config, mqtt, this.credentials, this.registry, child('node-config')))
    if (voice) voice.clockOf = (n) => nodeConfig.clock(n)
    const nodeAdmin = host.add(new NodeAdminFeature(config, mqtt, this.credentials, nodeConfig, this.registry, child('node-admin')))
    const sources: HealthSource[] = [
      () => ({ broker: broker.health() ?? (mqtt.connected ? { state: 'ok' } : { state: 'down', reason: 'external broker unreachable' }) }),
      () => ({ mqtt: mqtt.connected ? { state: 'ok' } : { state: 'down', reason: 'not connected' } }),
      () => (voice?.pipeline ? stageHealth(voice.pipeline) : {}),
      () => ({ bundle: this.f.bundle?.service ? this.f.bundle.health() : undefined }),
      () => ({ memory: memory?.health() }),
    ]
    const health = host.add(new HealthFeature(config.healthIntervalMs, mqtt, host, sources, child('health')))
    host.add(mqtt)
    // After the MQTT client: it watches the client's disconnects (broker outages).
    host.add(new IncidentsFeature(config, mqtt, this.registry, this.metrics, child('incidents')))
    const tls = config.mqttTlsCert && config.mqttTlsKey ? { host: config.httpsHost, port: config.httpsPort, certPath: config.mqttTlsCert, keyPath: config.mqttTlsKey } : undefined
    const http: HttpFeature = host.add(new HttpFeature({
      host: config.httpHost, port: config.httpPort, https: tls, stateDir: config.stateDir, authFailuresPerMinute: config.authFailuresPerMinute,
      verify: (u, p) => this.credentials.verify(u, p), metrics: this.metrics, log: child('http'),
      mqttHandle: () => { const a = broker.embedded?.aedes; return a && ((stream, req) => a.handle(stream, req)) },
    }, {
      registry: this.registry,
      metrics: this.metrics,
      readiness: () => this.readiness(),
      uptimeS: () => (Date.now() - this.startedAt) / 1000,
      drain: (reason) => void this.drain(reason),
      get bundles(): BundleService | undefined { return bundle?.service },
      get offlineTurns() { return offlineTurns.journal },
      nodeConfig,
      status: {
        hubId: config.hubId,
        brokerKind: config.mqttUrl ? 'external' : 'embedded',
        phase: () => this.phase,
        load: () => { const { sessions, queueDepth } = voice?.load() ?? { sessions: 0, queueDepth: 0 }; return { sessions, queueDepth } },
        drain: () => this.drainInfo?.view ?? null,
      },
      health: () => this.health(),
      versions,
      drainState: () => this.drainInfo,
      debug: opts.debug,
      admin: { retained: () => exportRetained(broker.embedded), nodes: nodeAdmin },
      turns: textTurns,
      memory: () => memory?.memory,
      page: { hubId: config.hubId, baseTopic: config.baseTopic, mqtt: !config.mqttUrl },
      pair: { codes: new PairCodes(), addCredential: (id, role) => this.credentials.add(id, role) },
    }))
    host.add(new StateLockFeature(config.stateDir, () => http.address))
    const bundle: BundleFeature | undefined = config.pipelineEnabled && config.bundleEnabled
      ? host.add(new BundleFeature(config, mqtt, weather, () => http.address?.port, child('bundle'), () => http.httpsAddress?.port))
      : undefined
    const presence = host.add(new PresenceFeature(config, mqtt, this.registry, () => this.state(), () => voice?.load() ?? { sessions: 0, queueDepth: 0, engines: {} }, this.startedAt,
      async () => (voice ? fallbacksByStage(this.metrics) : undefined)))
    if (config.haDiscovery) host.add(new HaDiscoveryFeature(config, mqtt, this.credentials, this.registry, child('ha-discovery')))
    for (const extra of opts.features ?? []) host.add(extra)
    // Last: its pings start once everything else has started.
    const systemd = host.add(new SystemdFeature({
      notifier: opts.systemd?.notifier ?? new SdNotifier({ socket: undefined, log }),
      watchdogMs: opts.systemd?.watchdogMs,
      graceMs: HUB_WATCHDOG_GRACE_MS,
      problem: () => {
        if (!broker.embedded) return null
        if (!broker.embedded.listening) return 'embedded broker not listening'
        return mqtt.connected ? null : 'MQTT client not connected'
      },
      status: () => {
        const sessions = voice?.load().sessions ?? 0
        const failed = host.states().filter((s) => s.state === 'failed').map((s) => s.name)
        return `${this.phase}: ${this.registry.online().length} nodes online, ${sessions} sessions${failed.length ? `, failed: ${failed.join(' ')}` : ''}`
      },
      log: child('systemd'),
    }))
    this.f = { broker, mqtt, weather, offlineTurns, voice, memory, nodeConfig, http, bundle, presence, health, systemd }
  }

  get broker() { return this.f.broker.embedded }
  get client() { return this.f.mqtt.client }
  get pipeline() { return this.f.voice?.pipeline }
  get bundles() { return this.f.bundle?.service }
  get offlineTurns() { return this.f.offlineTurns.journal }
  get nodeConfig() { return this.f.nodeConfig }
  get app() { return this.f.http.app }
  get httpAddress() { return this.f.http.address }
  get httpsAddress() { return this.f.http.httpsAddress }
  /** Every component's health as health/{component} publishes it. */
  health() { return this.f.health.current() }

  async start(): Promise<void> {
    collectDefaultMetrics({ register: this.metrics })
    await mkdir(this.config.stateDir, { recursive: true })
    await this.host.start() // throws only when the broker or the MQTT client fails
    if (this.host.stopped) return // stopped (SIGTERM) while starting: never announce ready
    this.phase = 'ready'
    // READY=1 once really ready: own client connected and subscribed (what /readyz checks first),
    // at once with the embedded broker. A failed optional feature does not hold it back (it shows in
    // STATUS= and /readyz); holding it would let TimeoutStartSec restart a hub that degrades fine.
    this.f.mqtt.onConnect(() => { if (this.phase === 'ready') this.f.systemd.ready() })
    this.f.health.check()
    const failed = this.host.states().filter((s) => s.state === 'failed').map((s) => s.name)
    this.log.info({ http: this.httpAddress, https: this.httpsAddress, mqtt: this.broker?.address ?? { url: '(external)' }, hubId: this.config.hubId, failed }, 'hub started')
  }

  /**
   * SIGHUP: re-read the TLS certificate and key (after `mirrormesh tls rotate`) for MQTT/TLS and
   * HTTPS. New connections get the new certificate; connected nodes stay connected. A pair that
   * cannot be read, or a key that does not match, is logged and the old one keeps serving.
   */
  async reloadTls(): Promise<boolean> {
    if (!this.config.mqttTlsCert) {
      this.log.info('SIGHUP: no certificate configured (MQTT_TLS_CERT), nothing to reload')
      return false
    }
    try {
      this.broker?.reloadTls()
      await this.f.http.reloadTls()
      this.log.info({ cert: this.config.mqttTlsCert }, 'TLS certificate reloaded')
      return true
    } catch (err) {
      this.log.error({ err: (err as Error).message, cert: this.config.mqttTlsCert }, 'TLS reload failed; still serving the previous certificate')
      return false
    }
  }

  readiness(): ReadinessResponse {
    const p = this.pipeline
    const checks: Record<string, boolean> = {
      broker: this.broker ? this.broker.listening : true,
      mqttConnected: this.f.mqtt.connected,
      registrySubscribed: this.f.mqtt.subscribed,
      notDraining: this.phase === 'ready',
    }
    // No LLM configured is a choice, not a fault: skills still answer, so no check.
    if (p?.llmConfigured) checks.llm = p.llm.health() !== 'down'
    const reasons: Record<string, string> = {}
    for (const s of this.host.states()) {
      if (s.name === 'broker' || s.name === 'mqtt') continue
      checks[s.name] = s.state === 'running'
      if (s.state === 'failed') reasons[s.name] = s.reason ?? 'failed to start'
    }
    const ready = Object.values(checks).every(Boolean)
    const memory = this.f.memory?.memory
    const modes = memory ? { modes: { memory: memory.mode } } : {}
    return Object.keys(reasons).length ? { ready, checks, reasons, ...modes } : { ready, checks, ...modes }
  }

  private state(): HubState {
    return this.phase === 'draining' ? 'draining' : 'online'
  }

  /** Safe restart: say draining, fail /readyz, let running turns end (bounded), then stop. */
  async drain(reason: string): Promise<void> {
    if (this.phase !== 'ready') return
    this.phase = 'draining'
    const turns = this.pipeline?.turns
    const inFlight = () => (turns ? turns.active + turns.queued : 0)
    let end!: (v: DrainView) => void
    const view: DrainView = { reason, startedAt: Date.now(), timeoutMs: this.config.drainTimeoutMs, turnsAtStart: inFlight() }
    this.drainInfo = { view, done: new Promise((r) => { end = r }), end }
    this.f.systemd.stopping()
    this.log.info({ reason, timeoutMs: this.config.drainTimeoutMs, turns: view.turnsAtStart }, 'hub draining')
    await this.f.presence.publishStatus()
    // New turns hear "busy"; running ones finish, bounded by DRAIN_TIMEOUT_MS.
    await turns?.drain(this.config.drainTimeoutMs)
    const cutOff = Math.min(inFlight(), view.turnsAtStart)
    view.result = { finished: view.turnsAtStart - cutOff, cutOff, endedAt: Date.now() }
    this.log.info({ ...view.result, turns: view.turnsAtStart }, 'hub drained')
    this.drainInfo.end(view)
    await this.stop()
  }

  stop(): Promise<void> {
    this.stopPromise ??= this.doStop()
    return this.stopPromise
  }

  private async doStop(): Promise<void> {
    this.phase = 'stopping'
    this.f.systemd.stopping()
    await this.host.stop() // last started first: presence, bundle, HTTP, MQTT (status offline), …, broker
    this.phase = 'stopped'
    this.log.info('hub stopped')
    this.resolveStopped()
  }
}

// The node agent: retained status + Last Will, heartbeat, hub watch (state machine), the
// voice loop with offline mode, push-to-talk and presence inputs (GPIO, MQTT, HTTP), the
// mirror screen and local /healthz. start()/stop().
import { createRequire } from 'node:module'
import Fastify, { type FastifyInstance } from 'fastify'
import { InboundValidator, MeshClient, Registry, filterFor, topicFor, type HubState, type Logger, type NodeEvent, type Payload, type ReplayResponse } from '@mirrormesh/broker'
import type { AgentConfig } from './config.js'
import { buildHeartbeat, sampleBoard, type BoardSample } from './heartbeat.js'
import type { AudioParts } from './audio-setup.js'
import { PushButton } from './button.js'
import { Presence, fileSource, gpiomonSource } from './presence.js'
import { OFFLINE_BANNER, defaultPublicDir, registerScreen, type Screen } from './screen.js'
import { NodeStateMachine } from './state.js'
import { VoiceLoop } from './voice.js'
import type { OfflineMode } from './offline-mode.js'
import { join } from 'node:path'

const pkg = createRequire(import.meta.url)('../package.json') as { version: string }
export const agentVersions: Record<string, string> = { agent: pkg.version, node: process.versions.node }

export class NodeAgent {
  readonly metrics = new Registry()
  readonly state: NodeStateMachine
  client: MeshClient | undefined
  health: FastifyInstance | undefined
  healthAddress: { host: string; port: number } | undefined
  private heartbeatTimer: NodeJS.Timeout | undefined
  private seq = 0
  private board: BoardSample = { cpuPct: null, memPct: null, temperatureC: null }
  private readonly startedAt = Date.now()
  screen: Screen | undefined
  readonly presence = new Presence({ debounceMs: 200 })
  voice: VoiceLoop | undefined
  audio: AudioParts | undefined
  offline: OfflineMode | undefined
  private button: PushButton | undefined
  /** The turn a held push-to-talk opened: releasing ends that turn only. */
  private pttTurn: number | undefined

  constructor(readonly config: AgentConfig, private readonly log: Logger) {
    this.state = new NodeStateMachine(config.hubStaleMs)
  }

  async start(): Promise<void> {
    const { config, log } = this
    const base = config.baseTopic
    const hubParams = { hub: config.hubId }
    const validator = new InboundValidator(base, this.metrics, log.child({ component: 'inbound' }))
    this.state.on('state', (c) => {
      log.info({ from: c.from, to: c.to, reason: c.reason }, 'node state changed')
      this.screen?.update({ state: c.to, banner: c.to === 'online' ? null : OFFLINE_BANNER })
      this.publishHeartbeat() // tell the hub our mode at once
    })
    this.presence.on('change', (p) => {
      this.screen?.update({ presence: p.present })
      this.client?.publish('nodePresence', { node: config.nodeId }, { v: 1, ts: Date.now(), present: p.present, since: p.since, source: p.source.slice(0, 64) }).catch(() => undefined)
    })
    this.presence.on('error', (err, source) => log.warn({ err, source }, 'presence input failed'))
    if (config.presenceFile) this.presence.add(fileSource(config.presenceFile))
    if (config.presenceGpio) this.presence.add(gpiomonSource({ ...gpioLine(config.presenceGpio), activeHigh: config.presenceGpioActive === 'high', bin: config.gpiomon }))

    const client = new MeshClient({
      url: config.mqttUrl,
      base,
      clientId: `node-${config.nodeId}`,
      username: config.mqttUsername,
      password: config.mqttPassword,
      keepaliveS: config.mqttKeepaliveS,
      // Gentler growth than the default: a hub restart on a LAN is back within seconds, a long outage still caps at 30 s.
      backoff: { initialMs: 300, factor: 1.5, minMs: 100, maxMs: 30_000 },
      will: { name: 'nodeStatus', params: { node: config.nodeId }, payload: 'offline' },
      log: log.child({ component: 'mqtt' }),
    })
    this.client = client
    const hubStatusTopic = topicFor(base, 'hubStatus', hubParams)
    const hubHeartbeatTopic = topicFor(base, 'hubHeartbeat', hubParams)
    const own = { node: config.nodeId }
    const audioOutTopic = topicFor(base, 'nodeAudioOut', own)
    const eventsTopic = topicFor(base, 'nodeEvents', own)
    client.on('connect', () => void this.onConnect([hubStatusTopic, hubHeartbeatTopic, filterFor(base, 'nodeConfig', own), audioOutTopic, eventsTopic, topicFor(base, 'nodeReplayResponse', own), topicFor(base, 'cacheManifest'), topicFor(base, 'nodeSet', own)]))
    client.on('disconnect', () => this.state.onBrokerLost())
    client.on('message', (topic, payload) => {
      const msg = validator.accept(topic, payload)
      if (!msg) return
      if (msg.name === 'hubStatus') this.state.onHubStatus(msg.data as HubState)
      else if (msg.name === 'hubHeartbeat') this.state.onHubHeartbeat()
      else if (msg.name === 'nodeAudioOut') this.voice?.onAudioOut(msg.data as Buffer)
      else if (msg.name === 'nodeEvents') this.onEvent(msg.data as NodeEvent)
      else if (msg.name === 'nodeReplayResponse') this.offline?.onReplayResponse(msg.data as ReplayResponse)
      else if (msg.name === 'cacheManifest') this.onManifest(msg.data as { version: string; sha256: string; url?: string })
      else if (msg.name === 'nodeSet') this.onCommand(msg.data as Payload<'nodeSet'>)
    })

    this.health = this.buildHealth()
    this.screen = registerScreen(this.health, { publicDir: defaultPublicDir(), initial: { nodeId: config.nodeId, room: config.room ?? null, state: 'offline', banner: OFFLINE_BANNER } })
    if (config.audioSource !== 'none') {
      // Loaded only with a microphone: VAD, wake word and onnxruntime cost memory a headless node need not pay.
      const { buildAudio } = await import('./audio-setup.js')
      const { OfflineMode } = await import('./offline-mode.js')
      this.audio = await buildAudio(config, log)
      this.voice = new VoiceLoop({ nodeId: config.nodeId, client, audioInTopic: topicFor(base, 'nodeAudioIn', own), state: this.state, listener: this.audio.listener, sink: this.audio.sink, screen: this.screen, log: log.child({ component: 'voice' }) })
      this.offline = new OfflineMode({ dir: join(config.stateDir, 'offline'), nodeId: config.nodeId, hubHttpUrl: config.hubHttpUrl ?? defaultHubHttpUrl(config.mqttUrl), client, state: this.state, voice: this.voice, screen: this.screen, log: log.child({ component: 'offline' }), endpoint: { silenceMs: config.offlineEndpointSilenceMs, resumeWindowMs: config.vadEndSilenceMs } })
      await this.offline.start()
      this.voice.offline = this.offline
      this.voice.start()
      if (config.pttGpio) {
        const button = new PushButton(gpiomonSource({ ...gpioLine(config.pttGpio), activeHigh: config.pttGpioActive === 'high', bin: config.gpiomon }))
        button.on('press', () => this.ptt(true, 'gpio'))
        // A tap leaves the turn to the VAD; a hold ends it on release.
        button.on('release', (r) => { if (r.held) this.ptt(false, 'gpio') })
        button.on('error', (err) => log.warn({ err, input: button.name }, 'push-to-talk button input failed'))
        this.button = button.start()
      }
    }
    client.start()

    await this.health.listen({ host: config.healthHost, port: config.healthPort })
    const addr = this.health.server.address()
    this.healthAddress = { host: config.healthHost, port: typeof addr === 'object' && addr ? addr.port : config.healthPort }
    void this.refreshBoard()
    this.heartbeatTimer = setInterval(() => {
      this.publishHeartbeat()
      if (this.seq % 5 === 0) void this.refreshBoard()
    }, config.heartbeatIntervalMs)
    log.info({ nodeId: config.nodeId, health: this.healthAddress }, 'node agent started')
  }

  /** Hub events for this node: screen text, playback control. */
  protected onEvent(ev: NodeEvent): void {
    this.voice?.onEvent(ev)
  }

  /** Push-to-talk from any input: pressed opens a turn now (no wake word); released ends the turn it opened. */
  ptt(pressed: boolean, source: string): number | null {
    const listener = this.audio?.listener
    if (!this.voice || !listener) return null
    if (pressed) {
      this.pttTurn = this.voice.pushToTalk()
      this.log.info({ source, turnId: this.pttTurn }, 'push-to-talk')
      return this.pttTurn
    }
    if (this.pttTurn !== undefined && listener.currentTurnId === this.pttTurn) listener.endUtterance('manual')
    this.pttTurn = undefined
    return null
  }

  /** `nodes/{id}/set` from Node-RED / Home Assistant. */
  protected onCommand(c: Payload<'nodeSet'>): void {
    // A queued "start listening" delivered long after the click would open the mic unasked.
    if (c.ts !== undefined && Date.now() - c.ts > COMMAND_MAX_AGE_MS) {
      this.log.warn({ ageMs: Date.now() - c.ts, command: c }, 'stale command dropped')
      return
    }
    if (c.present !== undefined) this.presence.set(c.present, 'mqtt')
    if (c.ptt !== undefined) {
      if (this.voice) this.ptt(c.ptt, 'mqtt')
      else this.log.warn('push-to-talk command ignored: this node has no microphone (AUDIO_SOURCE=none)')
    }
  }

  /** A new offline reply bundle was announced: fetch it (kept atomically; a bad one is refused). */
  protected onManifest(m: { version: string; sha256: string; url?: string }): void {
    this.offline?.onManifest(m).catch((err: unknown) => this.log.warn({ err }, 'bundle sync failed; keeping the current bundle'))
  }

  private async onConnect(filters: string[]): Promise<void> {
    const client = this.client!
    try {
      await client.publish('nodeStatus', { node: this.config.nodeId }, 'online')
      await client.subscribe(filters)
      this.state.onBrokerConnected()
      this.publishHeartbeat()
    } catch (err) {
      this.log.warn({ err }, 'announce/subscribe failed')
    }
  }

  private async refreshBoard(): Promise<void> {
    this.board = await sampleBoard(true)
  }

  private publishHeartbeat(): void {
    const client = this.client
    if (!client?.connected) return
    const hb = buildHeartbeat(this.seq++, this.state.state, this.board, agentVersions, this.startedAt, this.config.room ?? null)
    client.publish('nodeHeartbeat', { node: this.config.nodeId }, hb).catch(() => undefined)
  }

  healthView() {
    const s = this.state
    return {
      nodeId: this.config.nodeId,
      state: s.state,
      reason: s.reason,
      sinceMs: Date.now() - s.since,
      mqttConnected: s.brokerConnected,
      hubStatus: s.hubStatus,
      hubHeartbeatAgeMs: s.lastHubHeartbeatAt === null ? null : Date.now() - s.lastHubHeartbeatAt,
      versions: agentVersions,
      wakeWord: this.audio?.wake ?? null,
      offline: this.offline ? { bundleVersion: this.offline.bundleVersion ?? null, journalPending: this.offline.journal.pending().length } : null,
    }
  }

  private buildHealth(): FastifyInstance {
    const app = Fastify({ logger: false })
    app.get('/healthz', async () => this.healthView())
    // Push-to-talk from a button, a GPIO script or Home Assistant; {"pressed": false} releases a held button.
    app.post<{ Body: { pressed?: unknown } | undefined }>('/api/ptt', async (req, reply) => {
      if (!this.voice) return reply.code(409).send({ error: 'no_microphone', message: 'AUDIO_SOURCE is none' })
      const pressed = req.body?.pressed ?? true
      if (typeof pressed !== 'boolean') return reply.code(400).send({ error: 'bad_request', message: 'body must be empty or {"pressed": true|false}' })
      return { turnId: this.ptt(pressed, 'http') }
    })
    app.post<{ Body: { present?: unknown } }>('/api/presence', async (req, reply) => {
      if (typeof req.body?.present !== 'boolean') return reply.code(400).send({ error: 'bad_request', message: 'body must be {"present": true|false}' })
      this.presence.set(req.body.present, 'http')
      return { present: req.body.present }
    })
    app.get('/metrics', async (_req, reply) => reply.type(this.metrics.contentType).send(await this.metrics.metrics()))
    return app
  }

  async stop(): Promise<void> {
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer)
    this.state.stop()
    const statusTopic = topicFor(this.config.baseTopic, 'nodeStatus', { node: this.config.nodeId })
    this.offline?.close()
    await this.audio?.close()
    this.button?.stop()
    this.presence.close()
    await this.client?.stop([{ topic: statusTopic, payload: 'offline', qos: 1, retain: true }])
    this.screen?.close()
    await this.health?.close()
    this.log.info('node agent stopped')
  }
}

const COMMAND_MAX_AGE_MS = 10_000

function gpioLine(spec: string): { chip: string; line: number } {
  const i = spec.lastIndexOf(':')
  return { chip: spec.slice(0, i), line: Number(spec.slice(i + 1)) }
}

/** The hub's HTTP API on the MQTT host, default port: where the reply bundle is served. */
export function defaultHubHttpUrl(mqttUrl: string): string {
  const host = new URL(mqttUrl).hostname || '127.0.0.1'
  return `http://${host.includes(':') ? `[${host}]` : host}:8080`
}

// The node agent: a thin root over features (features/): hub watch, the node's config from
// the hub, the mirror screen, heartbeat, the voice loop with offline mode (with a
// microphone), push-to-talk and presence inputs (GPIO, MQTT, HTTP), local HTTP, and the MQTT
// client (status + Last Will). Inbound messages are routed by contract topic (FeatureHost).
// Only the MQTT client is critical: any other feature that fails to start is logged and shown
// on /healthz and /readyz, and the rest runs on.
import { FeatureHost, Registry, SdNotifier, SystemdFeature, type Feature, type Logger, type MeshClient, type SystemdEnv } from '@mirrormesh/broker'
import { buildAgentApp } from './app.js'
import type { AgentConfig } from './config.js'
import { ConfigFeature } from './features/config.js'
import { HeartbeatFeature, agentVersions } from './features/heartbeat.js'
import { HttpFeature } from './features/http.js'
import { HubWatchFeature } from './features/hub-watch.js'
import { InputsFeature } from './features/inputs.js'
import { JournalFeature } from './features/journal.js'
import { MqttFeature } from './features/mqtt.js'
import { OfflineFeature } from './features/offline.js'
import { RebuildFeature } from './features/rebuild.js'
import { ScreenFeature } from './features/screen.js'
import { VoiceFeature } from './features/voice.js'
import { Presence } from './presence.js'
import { OFFLINE_BANNER, defaultPublicDir, type Screen } from './screen.js'
import { NodeStateMachine } from './state.js'

export { agentVersions } from './features/heartbeat.js'
export { defaultHubHttpUrl } from './features/offline.js'

interface Parts {
  mqtt: MqttFeature
  settings: ConfigFeature
  voice: VoiceFeature | undefined
  offline: OfflineFeature | undefined
  journal: JournalFeature
  inputs: InputsFeature
  http: HttpFeature
  screen: Screen
}

export interface NodeAgentOptions {
  /** systemd's notify socket and watchdog (main.ts: systemdFromEnv); without it nothing is sent. */
  systemd?: SystemdEnv
  /** Asked by `mirrormesh node rebuild` (features/rebuild.ts): stop this agent and start a fresh one (main.ts). */
  restart?: (reason: string) => void
}

export class NodeAgent {
  readonly metrics = new Registry()
  readonly state: NodeStateMachine
  readonly presence = new Presence({ debounceMs: 200 })
  readonly host: FeatureHost
  private parts: Parts | undefined
  private readonly systemd: SystemdFeature

  constructor(readonly config: AgentConfig, private readonly log: Logger, private readonly opts: NodeAgentOptions = {}) {
    this.state = new NodeStateMachine(config.hubStaleMs, config.hubId)
    this.host = new FeatureHost(log)
    // Healthy = the event loop runs (the ping timer firing is the check). No `problem`: a lost hub
    // or broker is what offline mode is for, and a restart would not bring either back — the
    // agent keeps answering from its cache and reconnecting, so systemd must not restart it.
    this.systemd = new SystemdFeature({
      notifier: opts.systemd?.notifier ?? new SdNotifier({ socket: undefined, log }),
      watchdogMs: opts.systemd?.watchdogMs,
      status: () => this.statusLine(),
      log: log.child({ component: 'systemd' }),
    })
  }

  async start(): Promise<void> {
    const { config, log, state, presence, host } = this
    const mqtt = new MqttFeature({ config, host, state, metrics: this.metrics, log })
    const client = mqtt.client
    const settings = new ConfigFeature({ config, log: log.child({ component: 'config' }) })
    const { app, screen } = buildAgentApp({
      healthView: () => this.healthView(),
      features: () => host.states(),
      mqttConnected: () => state.brokerConnected,
      voiceProblem: () => this.voiceProblem(),
      ptt: (pressed, source) => this.ptt(pressed, source),
      presence,
      metrics: this.metrics,
      screen: { publicDir: defaultPublicDir(), initial: { nodeId: config.nodeId, room: config.room ?? null, state: 'offline', banner: OFFLINE_BANNER } },
    })
    const voice = config.audioSource === 'none' ? undefined : new VoiceFeature({ config, client, state, settings, screen, log })
    // On every node: a journal left by an earlier run is replayed whatever the audio source.
    const journal = new JournalFeature({ config, client, state, log })
    const offline = voice && new OfflineFeature({ config, client, state, voice, journal, screen, settings, log })
    const inputs = new InputsFeature({ config, client, presence, voice, log, screen, onMute: () => heartbeat.publish() })
    const heartbeat = new HeartbeatFeature({ config, client, mqtt, state, settings, metrics: this.metrics, muted: () => inputs.muted })
    const http = new HttpFeature(app, { host: config.healthHost, port: config.healthPort })
    this.parts = { mqtt, settings, voice, offline, journal, inputs, http, screen }
    const features: (Feature | undefined)[] = [
      new HubWatchFeature(state, log, config.hubStaleMs),
      settings,
      new ScreenFeature({ screen, state, presence, settings, client, nodeId: config.nodeId, showReplies: !voice }),
      heartbeat,
      journal,
      voice,
      offline,
      inputs,
      http,
      this.opts.restart && new RebuildFeature({ config, client, mqtt, restart: this.opts.restart, log: log.child({ component: 'rebuild' }) }),
      // Last: retained hub status and config arrive on subscribe, and only running features get them.
      mqtt,
      // After everything: its pings start once the rest has started.
      this.systemd,
    ]
    for (const f of features) if (f) host.add(f)
    await host.start()
    this.systemd.ready()
    log.info({ health: this.healthAddress, features: host.states() }, 'node agent started')
  }

  get client(): MeshClient | undefined { return this.parts?.mqtt.client }
  get healthAddress(): { host: string; port: number } | undefined { return this.parts?.http.address }
  get screen(): Screen | undefined { return this.parts?.screen }
  get voice() { return this.parts?.voice?.loop }
  get audio() { return this.parts?.voice?.audio }
  get offline() { return this.parts?.offline?.mode }
  get settings() { return this.parts?.settings.settings }

  /** Push-to-talk from any input: pressed opens a turn now; released ends the turn it opened. */
  ptt(pressed: boolean, source: string): number | null {
    return this.parts?.inputs.ptt(pressed, source) ?? null
  }

  private voiceProblem(): string | null {
    const voice = this.parts?.voice
    if (!voice) return 'AUDIO_SOURCE is none'
    const s = this.host.get(voice.name)
    return s?.state === 'running' ? null : `the voice feature is ${s?.state ?? 'not started'}${s?.reason ? `: ${s.reason}` : ''}`
  }

  healthView() {
    const s = this.state
    const p = this.parts
    const offline = p?.offline?.mode
    const journal = p?.journal.journal
    return {
      nodeId: this.config.nodeId,
      state: s.state,
      reason: s.reason,
      sinceMs: Date.now() - s.since,
      mqttConnected: s.brokerConnected,
      hubStatus: s.hubStatus,
      hub: s.servingHub,
      hubHeartbeatAgeMs: s.lastHubHeartbeatAt === null ? null : Date.now() - s.lastHubHeartbeatAt,
      versions: agentVersions,
      wakeWord: p?.voice?.audio?.wake ?? null,
      offline: offline || journal ? { bundleVersion: offline?.bundleVersion ?? null, journalPending: journal?.size ?? 0 } : null,
      config: p ? { ...p.settings.settings, wakeWordPending: p.settings.wakeWordPending } : null,
      features: this.host.states(),
    }
  }

  /** STATUS= for systemd: mode (online/offline/recovering) and the offline bundle version. */
  private statusLine(): string {
    const offline = this.parts?.offline?.mode
    const bundle = offline ? `bundle ${offline.bundleVersion ?? 'none'}` : 'no offline mode'
    return `${this.state.state} (${this.state.reason}), ${bundle}`
  }

  async stop(): Promise<void> {
    this.systemd.stopping()
    await this.host.stop()
    this.log.info('node agent stopped')
  }
}

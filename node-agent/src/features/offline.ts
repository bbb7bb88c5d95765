// Offline mode (offline-mode.ts) under the voice loop: keeps the hub's reply bundle in sync
// from cache/manifest, answers from it while the hub is gone, replays its journal when the hub
// is back (the journal feature, features/journal.ts, holds and replays the journal on every node).
// Needs the voice loop; without a microphone it is not added at all.
import { join } from 'node:path'
import type { Feature, Handlers, Logger, MeshClient, Payload } from '@mirrormesh/broker'
import type { AgentConfig } from '../config.js'
import { hubFetch, isLoopbackHost } from '../offline/hub-fetch.js'
import type { OfflineMode } from '../offline-mode.js'
import type { Screen } from '../screen.js'
import type { NodeStateMachine } from '../state.js'
import type { ConfigFeature } from './config.js'
import type { JournalFeature } from './journal.js'
import type { VoiceFeature } from './voice.js'

/** The hub's HTTP API when HUB_HTTP_URL is unset: the MQTT host, on the port the manifest gives (8080 when it gives none). */
export function defaultHubHttpUrl(mqttUrl: string, httpPort = 8080, scheme: 'http' | 'https' = 'http'): string {
  const host = new URL(mqttUrl).hostname || '127.0.0.1'
  return `${scheme}://${host.includes(':') && !host.startsWith('[') ? `[${host}]` : host}:${httpPort}`
}

export class OfflineFeature implements Feature {
  readonly name = 'offline'
  readonly handlers: Handlers
  mode: OfflineMode | undefined
  /** The hub the retained nodes/{id}/assign names; undefined with a single hub (no assignment). */
  private assignedHub: string | undefined
  private readonly hubManifests = new Map<string, Payload<'hubManifest'>>()

  constructor(private readonly deps: { config: AgentConfig; client: MeshClient; state: NodeStateMachine; voice: VoiceFeature; journal: JournalFeature; screen: Screen; settings?: ConfigFeature; log: Logger }) {
    this.handlers = {
      // One hub announces on cache/manifest; several (HUB_ROLE active/standby) each on
      // hub/{hub}/manifest, and a node installs the bundle of the hub assigned to it: a bundle
      // it can fetch from a live hub, whichever hub announced last.
      cacheManifest: (m) => { if (this.assignedHub === undefined) this.onManifest(m.data) },
      hubManifest: (m) => {
        this.hubManifests.set(m.params.hub!, m.data)
        if (m.params.hub === this.assignedHub) this.onManifest(m.data)
      },
      nodeAssign: (m) => {
        if (m.data.hub === this.assignedHub) return
        this.assignedHub = m.data.hub
        const announced = this.hubManifests.get(m.data.hub)
        if (announced) this.onManifest(announced)
      },
      // A timer set online ends on the hub, which only sends the event: the bundle has the words.
      nodeEvents: (m) => { if (m.data.type === 'timer_done') this.mode?.timerDone(m.data.label ?? 'Timer') },
    }
  }

  async start(): Promise<void> {
    const { config, client, state, voice, screen, log } = this.deps
    const loop = voice.loop
    if (!loop) throw new Error('needs the voice loop, which did not start (see the voice feature)')
    const journal = this.deps.journal.journal
    if (!journal) throw new Error(`needs the offline journal, which did not open: ${this.deps.journal.failure ?? 'see the journal feature'}`)
    const { OfflineMode } = await import('../offline-mode.js')
    const mode = new OfflineMode({
      dir: join(config.stateDir, 'offline'), nodeId: config.nodeId, hubHttpUrl: this.hubHttpUrl(),
      fetch: hubFetch({ ca: config.mqttCa, username: config.mqttUsername, password: config.mqttPassword }),
      client, state, journal, voice: loop, screen, log: log.child({ component: 'offline' }),
      endpoint: { silenceMs: config.offlineEndpointSilenceMs, resumeWindowMs: config.vadEndSilenceMs },
      // "volume up" answered offline changes the volume, as the hub's event would online.
      clock: () => {
        const s = this.deps.settings?.settings
        return { ...(s?.timeZone ? { timeZone: s.timeZone } : {}), ...(s?.clock ? { clock: s.clock } : {}) }
      },
      onReplyEvent: (e) => { if (e.type === 'volume') this.deps.settings?.applyVolumeEvent(e as { change?: 'up' | 'down'; level?: number }) },
    })
    await mode.start()
    this.mode = mode
    loop.offline = mode
  }

  /**
   * HUB_HTTP_URL wins; else the MQTT host with the port the hub put in the manifest: its HTTPS
   * port when it has one, except for a node on the hub's own box that chose plain MQTT on
   * loopback, which uses the plain loopback listener (nothing crosses the LAN, no CA needed).
   */
  hubHttpUrl(manifestPort?: number, httpsPort?: number): string {
    const { hubHttpUrl, mqttUrl } = this.deps.config
    if (hubHttpUrl) return hubHttpUrl
    const u = new URL(mqttUrl)
    const local = (u.protocol === 'mqtt:' || u.protocol === 'tcp:' || u.protocol === 'ws:') && isLoopbackHost(u.hostname)
    return httpsPort && !(local && manifestPort)
      ? defaultHubHttpUrl(mqttUrl, httpsPort, 'https')
      : defaultHubHttpUrl(mqttUrl, manifestPort)
  }

  /** A new offline reply bundle was announced: fetch it (kept atomically; a bad one is refused). */
  private onManifest(m: Payload<'cacheManifest'>): void {
    this.mode?.onManifest(m, this.hubHttpUrl(m.httpPort, m.httpsPort)).catch((err: unknown) => this.deps.log.warn({ err }, 'bundle sync failed; keeping the current bundle'))
  }

  stop(): void {
    if (this.deps.voice.loop?.offline === this.mode) this.deps.voice.loop!.offline = undefined
    this.mode?.close()
  }
}

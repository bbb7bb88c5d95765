// The voice pipeline as a feature: audio/in frames and the node's TTFA reports go to the
// TurnManager; what the pipeline says goes out through the hub's MQTT client. Skill
// timers live here so stop() clears them.
import { HubTimers } from '../pipeline/skills-timers.js'
import { Histogram, type Registry } from 'prom-client'
import { AudioFlags, decodeAudioFrame, topicFor, type ClockSettings, type EventBody, type Feature, type Handlers, type HubEvent, type Logger, type NodeEvent } from '@mirrormesh/broker'
import type { HubConfig } from '../config.js'
import { Arbiter } from './arbitration.js'
import { createPipeline, type Pipeline } from '../pipeline/index.js'
import type { TurnIo } from '../pipeline/turns.js'
import type { NodeRegistry } from '../registry.js'
import type { MqttFeature } from './mqtt.js'
import type { HubLoad } from './presence.js'
import type { WeatherFeature } from './weather.js'

/** At most one utterance's worth of audio held per node for a takeover (~30 s of PCM16 16 kHz). */
const heldMaxBytes = 1_000_000

export class VoiceFeature implements Feature {
  readonly name = 'voice'
  pipeline: Pipeline | undefined
  private readonly timers = new Set<NodeJS.Timeout>()
  /** Scale-out (assignment.ts): whether this hub serves the node now; unset, it serves every node. */
  serves: ((node: string) => boolean) | undefined
  private readonly lastAudio = new Map<string, number>()
  private arbiter: Arbiter | undefined
  /** The current utterance of each node another hub serves, so a takeover can finish it. */
  private readonly held = new Map<string, { turnId: number; frames: Buffer[]; bytes: number; at: number }>()
  /** node → the last turn some hub answered (reply, error, busy): a held turn already answered is not redone. */
  private readonly answered = new Map<string, number>()
  private readonly hubTimers = new HubTimers()
  /** A node's time zone and 12/24-hour clock from its config (hub.ts wires the node-config store). */
  clockOf: ((nodeId: string) => ClockSettings) | undefined
  readonly handlers: Handlers = {
    nodeAudioIn: (m) => this.onAudio(m.params.node!, m.data),
    nodeEvents: (m) => {
      const e = m.data
      if (e.type === 'ttfa') this.pipeline?.turns.onNodeTtfa(m.params.node!, e)
      else if (e.type === 'wake') this.arbiter?.onWake(m.params.node!, e.turnId, e.score)
      else if (e.type === 'reply' || e.type === 'turn_error' || e.type === 'busy') this.answered.set(m.params.node!, e.turnId)
    },
  }

  constructor(
    private readonly config: HubConfig,
    private readonly mqtt: MqttFeature,
    private readonly registry: NodeRegistry,
    private readonly weather: WeatherFeature,
    private readonly metrics: Registry,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    this.pipeline = await createPipeline(this.config, this.io(), this.metrics, this.log)
    this.arbiter = this.makeArbiter()
  }

  /** Mirrors of one room that hear the same request: one answers (arbitration.ts). */
  private makeArbiter(): Arbiter | undefined {
    if (this.config.arbitrationWindowMs === 0) return undefined
    const delay = new Histogram({ name: 'mirrormesh_arbitration_decision_seconds', help: 'Start of the first candidate turn → the room\'s decision (the delay arbitration adds before the winner\'s audio reaches the pipeline)', buckets: [0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1], registers: [this.metrics] })
    const room = (n: string) => this.registry.get(n)?.room ?? null
    return new Arbiter({
      windowMs: this.config.arbitrationWindowMs,
      room,
      roomPeers: (n) => { const r = room(n); return r === null ? [] : this.registry.online().filter((o) => o.id !== n && o.room === r && (!this.serves || this.serves(o.id))).map((o) => o.id) },
      present: (n) => this.registry.get(n)?.presence?.present === true,
      pass: (n, f) => this.pipeline?.turns.onAudio(n, f),
      lost: (n, turnId, winner) => void this.mqtt.publish('nodeEvents', { node: n }, { v: 1, ts: Date.now(), type: 'arbitrated', turnId, winner }),
      decided: (d) => {
        delay.observe(d.delayMs / 1000)
        this.log.info({ room: d.room, winner: d.winner, delayMs: Math.round(d.delayMs), scores: d.scores, ...(d.wake ? { wake: d.wake } : {}) }, 'arbitration: one mirror answers')
      },
    })
  }

  async stop(): Promise<void> {
    for (const t of this.timers) clearTimeout(t)
    this.timers.clear()
    this.arbiter?.close()
    this.hubTimers.stop()
    await this.pipeline?.close()
  }

  /** Nothing running for the node on this hub and no audio from it for a moment: safe to hand over. */
  idle(node: string): boolean {
    const at = this.lastAudio.get(node)
    return (at === undefined || performance.now() - at > 1500) && !this.pipeline?.turns.busy(node)
  }

  /**
   * This hub took the node over from a dead hub: an utterance that hub never answered is
   * played into our pipeline, so the turn in flight is finished here rather than lost.
   */
  adopt(node: string): void {
    const h = this.held.get(node)
    this.held.delete(node)
    if (!h || this.answered.get(node) === h.turnId || performance.now() - h.at > this.config.turnTimeoutMs) return
    this.log.info({ node, turnId: h.turnId, frames: h.frames.length }, 'finishing a turn the previous hub left unanswered')
    for (const f of h.frames) this.pipeline?.turns.onAudio(node, f)
  }

  private onAudio(node: string, frame: Buffer): void {
    if (!this.serves || this.serves(node)) {
      this.lastAudio.set(node, performance.now())
      if (this.arbiter) this.arbiter.onAudio(node, frame)
      else this.pipeline?.turns.onAudio(node, frame)
      return
    }
    const f = decodeAudioFrame(frame)
    if (typeof f === 'string') return
    if (f.flags & (AudioFlags.cancel | AudioFlags.bargeIn)) { this.held.delete(node); if (!(f.flags & AudioFlags.start)) return }
    const h = this.held.get(node)
    if (f.flags & AudioFlags.start) this.held.set(node, { turnId: f.turnId, frames: [frame], bytes: frame.length, at: performance.now() })
    else if (h && h.turnId === f.turnId && h.bytes + frame.length <= heldMaxBytes) {
      h.frames.push(frame)
      h.bytes += frame.length
      h.at = performance.now()
    }
  }

  load(): HubLoad {
    const p = this.pipeline
    return { sessions: p?.turns.active ?? 0, queueDepth: p?.turns.queued ?? 0, engines: p?.health() ?? {} }
  }

  /** What the pipeline may do to the outside world: publish audio, events and house actions. */
  private io(): TurnIo {
    const send = (nodeId: string, event: EventBody<HubEvent>) => {
      void this.mqtt.publish('nodeEvents', { node: nodeId }, { v: 1, ts: Date.now(), ...event } as NodeEvent)
    }
    return {
      sendAudio: (nodeId, frame) => {
        this.mqtt.client?.publishRaw(topicFor(this.config.baseTopic, 'nodeAudioOut', { node: nodeId }), frame, 0, false).catch(() => undefined)
      },
      sendEvent: send,
      endTurn: (nodeId, turnId) => void this.mqtt.publish('nodeTurnEnd', { node: nodeId }, { v: 1, ts: Date.now(), turnId, reason: 'early_end' }),
      room: (nodeId) => this.registry.get(nodeId)?.room ?? null,
      skillEnv: (nodeId) => ({
        nodeId,
        now: new Date(),
        clock: this.clockOf?.(nodeId),
        act: (component, a) => void this.mqtt.publish('action', { component }, { v: 1, ts: Date.now(), ...a, nodeId }),
        notify: (event) => send(nodeId, event),
        weather: () => this.weather.current(),
        ...this.hubTimers.env(nodeId, (label) => send(nodeId, { type: 'timer_done', label })),
      }),
    }
  }
}

// The voice pipeline as a feature: audio/in frames and the node's TTFA reports go to the
// TurnManager; what the pipeline says goes out through the hub's MQTT client. Skill
// timers live here so stop() clears them.
import { HubTimers } from '../pipeline/skills-timers.js'
import type { Registry } from 'prom-client'
import { topicFor, type EventBody, type Feature, type Handlers, type HubEvent, type Logger, type NodeEvent } from '@mirrormesh/broker'
import type { HubConfig } from '../config.js'
import { createPipeline, type Pipeline } from '../pipeline/index.js'
import type { TurnIo } from '../pipeline/turns.js'
import type { NodeRegistry } from '../registry.js'
import type { MqttFeature } from './mqtt.js'
import type { HubLoad } from './presence.js'
import type { WeatherFeature } from './weather.js'

export class VoiceFeature implements Feature {
  readonly name = 'voice'
  pipeline: Pipeline | undefined
  private readonly hubTimers = new HubTimers()
  readonly handlers: Handlers = {
    nodeAudioIn: (m) => this.pipeline?.turns.onAudio(m.params.node!, m.data),
    nodeEvents: (m) => { if (m.data.type === 'ttfa') this.pipeline?.turns.onNodeTtfa(m.params.node!, m.data) },
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
  }

  async stop(): Promise<void> {
    this.hubTimers.stop()
    await this.pipeline?.close()
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
      room: (nodeId) => this.registry.get(nodeId)?.room ?? null,
      skillEnv: (nodeId) => ({
        nodeId,
        now: new Date(),
        act: (component, a) => void this.mqtt.publish('action', { component }, { v: 1, ts: Date.now(), ...a, nodeId }),
        notify: (event) => send(nodeId, event),
        weather: () => this.weather.current(),
        ...this.hubTimers.env(nodeId, (label) => send(nodeId, { type: 'timer_done', label })),
      }),
    }
  }
}

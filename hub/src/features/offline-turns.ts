// Offline turns replayed by nodes after an outage, and the incident journal of node state
// changes. The journal (bundle/journal.ts) dedups, persists and acknowledges; this feature
// feeds it and gives it the hub's MQTT client to ack and to carry out late house actions.
import type { Registry } from 'prom-client'
import type { Feature, Handlers, Logger } from '@mirrormesh/broker'
import { OfflineTurnLog } from '../bundle/journal.js'
import type { HubConfig } from '../config.js'
import type { NodeRegistry, NodeView, NodeState } from '../registry.js'
import type { MqttFeature } from './mqtt.js'

export class OfflineTurnsFeature implements Feature {
  readonly name = 'offline-turns'
  journal: OfflineTurnLog | undefined
  readonly handlers: Handlers = {
    nodeEvents: (m) => { if (m.data.type === 'offline_turn') this.journal?.handle(m.params.node!, m.data) },
  }
  private readonly onState = (view: NodeView, from: NodeState | null) => this.journal?.nodeState(view, from)

  constructor(
    private readonly config: HubConfig,
    private readonly mqtt: MqttFeature,
    private readonly registry: NodeRegistry,
    private readonly metrics: Registry,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    const journal = new OfflineTurnLog({ stateDir: this.config.stateDir, metrics: this.metrics, log: this.log, io: {
      ack: (nodeId, ids) => void this.mqtt.publish('nodeEvents', { node: nodeId }, { v: 1, ts: Date.now(), type: 'journal_ack', ids }),
      act: (component, a) => void this.mqtt.publish('action', { component }, { v: 1, ts: Date.now(), ...a }),
    } })
    await journal.start()
    this.journal = journal
    this.registry.on('state', this.onState)
  }

  async stop(): Promise<void> {
    this.registry.off('state', this.onState)
    await this.journal?.close()
  }
}

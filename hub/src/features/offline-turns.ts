// Offline turns replayed by nodes after an outage (node state changes are the incidents
// feature's). The journal (bundle/journal.ts) dedups, persists and answers each replay request
// (nodes/{id}/request/replay → response/replay); this feature feeds it and gives it the
// hub's MQTT client to answer and to carry out late house actions.
import type { Registry } from 'prom-client'
import type { Feature, Handlers, Logger } from '@mirrormesh/broker'
import { OfflineTurnLog } from '../bundle/journal.js'
import type { HubConfig } from '../config.js'
import type { MqttFeature } from './mqtt.js'

export class OfflineTurnsFeature implements Feature {
  readonly name = 'offline-turns'
  journal: OfflineTurnLog | undefined
  /** Scale-out (assignment.ts): only the hub serving the node keeps its journal, so it is replayed once. */
  serves: ((node: string) => boolean) | undefined
  readonly handlers: Handlers = {
    nodeReplayRequest: (m) => { if (!this.serves || this.serves(m.params.node!)) void this.journal?.handle(m.params.node!, m.data) },
  }

  constructor(
    private readonly config: HubConfig,
    private readonly mqtt: MqttFeature,
    private readonly metrics: Registry,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    const journal = new OfflineTurnLog({ stateDir: this.config.stateDir, metrics: this.metrics, log: this.log, io: {
      respond: (nodeId, res) => void this.mqtt.publish('nodeReplayResponse', { node: nodeId }, res),
      act: (component, a) => void this.mqtt.publish('action', { component }, { v: 1, ts: Date.now(), ...a }),
    } })
    await journal.start()
    this.journal = journal
  }

  async stop(): Promise<void> {
    await this.journal?.close()
  }
}

// The hub's retained status and its heartbeats drive the node's state machine
// (online / offline / recovering).
import type { Feature, Handlers, Logger } from '@mirrormesh/broker'
import type { NodeStateMachine, StateChange } from '../state.js'

export class HubWatchFeature implements Feature {
  readonly name = 'hub-watch'
  readonly handlers: Handlers

  private readonly logChange = (c: StateChange): void => this.log.info({ from: c.from, to: c.to, reason: c.reason }, 'node state changed')

  constructor(private readonly state: NodeStateMachine, private readonly log: Logger) {
    this.handlers = {
      hubStatus: (m) => this.state.onHubStatus(m.data),
      hubHeartbeat: () => this.state.onHubHeartbeat(),
    }
  }

  start(): void {
    this.state.on('state', this.logChange)
  }

  stop(): void {
    this.state.off('state', this.logChange)
    this.state.stop()
  }
}

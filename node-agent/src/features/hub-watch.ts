// The hub's retained status and its heartbeats drive the node's state machine
// (online / offline / recovering).
import type { Feature, Handlers, HubState, Logger } from '@mirrormesh/broker'
import type { NodeStateMachine, StateChange } from '../state.js'

export class HubWatchFeature implements Feature {
  readonly name = 'hub-watch'
  readonly handlers: Handlers

  private readonly logChange = (c: StateChange): void => this.log.info({ from: c.from, to: c.to, reason: c.reason }, 'node state changed')

  /** Every hub's last status and heartbeat (monotonic ms), so a switch to another hub starts from what is known of it. */
  private readonly hubs = new Map<string, { status: HubState | 'unknown'; beatAt: number | null }>()

  constructor(private readonly state: NodeStateMachine, private readonly log: Logger, private readonly hubStaleMs = Infinity) {
    this.handlers = {
      hubStatus: (m) => {
        this.hub(m.params.hub!).status = m.data
        if (m.params.hub === this.state.servingHub) this.state.onHubStatus(m.data)
      },
      hubHeartbeat: (m) => {
        this.hub(m.params.hub!).beatAt = performance.now()
        if (m.params.hub === this.state.servingHub) this.state.onHubHeartbeat()
      },
      // Scale-out / failover: follow the hub the assignment names, not a fixed HUB_ID.
      nodeAssign: (m) => {
        const to = m.data.hub
        if (to === this.state.servingHub) return
        const h = this.hub(to)
        this.log.info({ from: this.state.servingHub, to, epoch: m.data.epoch }, 'assigned to another hub')
        this.state.switchHub(to, h.status, h.beatAt !== null && performance.now() - h.beatAt < this.hubStaleMs)
      },
    }
  }

  private hub(id: string) {
    let h = this.hubs.get(id)
    if (!h) this.hubs.set(id, h = { status: 'unknown', beatAt: null })
    return h
  }

  start(): void {
    this.state.on('state', this.logChange)
  }

  stop(): void {
    this.state.off('state', this.logChange)
    this.state.stop()
  }
}

// The node's view of the hub: online -> offline (broker lost, hub Last Will, hub
// heartbeat stale) -> recovering (hub seen alive again; recovery tasks run) -> online.
// Later features (offline mode, journal replay) hook into the `state` event and
// addRecoveryTask().
import { EventEmitter } from 'node:events'
import type { HubState, NodeMode } from '@mirrormesh/broker'

export type OfflineReason = 'starting' | 'broker_lost' | 'hub_offline' | 'hub_heartbeat_stale'

export interface StateChange { from: NodeMode; to: NodeMode; reason: string; at: number }

export interface NodeStateEvents {
  state: [change: StateChange]
}

export type RecoveryTask = (signal: AbortSignal) => Promise<void>

export class NodeStateMachine extends EventEmitter<NodeStateEvents> {
  state: NodeMode = 'offline'
  reason: string = 'starting'
  since = Date.now()
  brokerConnected = false
  hubStatus: HubState | 'unknown' = 'unknown'
  /** The hub whose status and heartbeat count: HUB_ID until a retained nodes/{id}/assign names another. */
  servingHub: string
  lastHubHeartbeatAt: number | null = null
  /** True from a hub heartbeat until hubStaleMs pass without one. The timer decides, not wall-clock
   * arithmetic: an NTP step on a Pi without an RTC must not keep a dead hub looking alive. */
  private hubHeartbeatFresh = false
  /** Hub heartbeats since the last hub status message. */
  private heartbeatsSinceStatus = 0
  private staleTimer: NodeJS.Timeout | undefined
  private readonly tasks: RecoveryTask[] = []
  private recovery: AbortController | undefined

  constructor(private readonly hubStaleMs: number, hubId = 'main') {
    super()
    this.servingHub = hubId
  }

  /**
   * The node was assigned to another hub (failover, rebalance, hand-back). What is known of that
   * hub replaces what was known of the old one; `heartbeatFresh` (seen within HUB_STALE_MS) keeps a
   * node online across a hand-over between two live hubs instead of dropping it offline.
   */
  switchHub(hubId: string, status: HubState | 'unknown', heartbeatFresh: boolean): void {
    if (hubId === this.servingHub) return
    this.servingHub = hubId
    this.hubStatus = status
    if (heartbeatFresh) return this.onHubHeartbeat()
    if (this.staleTimer) clearTimeout(this.staleTimer)
    this.hubHeartbeatFresh = false
    this.evaluate('hub_assigned')
  }

  addRecoveryTask(task: RecoveryTask): void {
    this.tasks.push(task)
  }

  onBrokerConnected(): void {
    this.brokerConnected = true
    // Retained hub status from before the reconnect is not proof of life; wait for a fresh heartbeat.
    this.lastHubHeartbeatAt = null
    this.hubHeartbeatFresh = false
    this.evaluate('broker_connected')
  }

  onBrokerLost(): void {
    this.brokerConnected = false
    this.evaluate('broker_lost')
  }

  onHubStatus(status: HubState): void {
    this.hubStatus = status
    this.heartbeatsSinceStatus = 0
    this.evaluate(status === 'offline' ? 'hub_offline' : `hub_${status}`)
  }

  onHubHeartbeat(now = Date.now()): void {
    this.lastHubHeartbeatAt = now
    this.hubHeartbeatFresh = true
    if (this.staleTimer) clearTimeout(this.staleTimer)
    this.staleTimer = setTimeout(() => {
      this.hubHeartbeatFresh = false
      this.evaluate('hub_heartbeat_stale')
    }, this.hubStaleMs)
    this.staleTimer.unref()
    // Only a running hub sends heartbeats. A status `offline` followed by two of them is a Last
    // Will whose `online` was lost (a node once stayed offline for good after hub takeovers);
    // one alone may have been in flight before the Will.
    if (this.hubStatus === 'offline' && ++this.heartbeatsSinceStatus >= 2) {
      this.hubStatus = 'online'
      this.evaluate('hub_heartbeats_after_offline')
      return
    }
    this.evaluate('hub_heartbeat')
  }

  hubAlive(): boolean {
    return this.brokerConnected && this.hubHeartbeatFresh &&
      (this.hubStatus === 'online' || this.hubStatus === 'draining')
  }

  stop(): void {
    if (this.staleTimer) clearTimeout(this.staleTimer)
    this.recovery?.abort()
  }

  private evaluate(reason: string): void {
    if (!this.hubAlive()) {
      if (this.state !== 'offline') {
        this.recovery?.abort()
        this.set('offline', reason)
      }
      return
    }
    if (this.state === 'offline') {
      this.set('recovering', reason)
      void this.recover()
    }
  }

  private async recover(): Promise<void> {
    const ctl = new AbortController()
    this.recovery = ctl
    for (const task of this.tasks) {
      try {
        await task(ctl.signal)
      } catch {
        // A failed task must not keep the mirror out of online mode: tasks log and retry themselves.
      }
      if (ctl.signal.aborted) return
    }
    if (this.state === 'recovering' && this.hubAlive()) this.set('online', 'recovered')
  }

  private set(to: NodeMode, reason: string): void {
    const change: StateChange = { from: this.state, to, reason, at: Date.now() }
    this.state = to
    this.reason = reason
    this.since = change.at
    this.emit('state', change)
  }
}

// Several hubs on one external broker (HUB_ROLE active/standby): which hub serves which node.
// The answer is a retained nodes/{id}/assign = {hub, epoch} that every hub and node sees.
// Sticky, not per message: a node's whole turn (its audio, the reply, the journal replay)
// must reach one hub, which `$share` subscriptions cannot promise.
//
// The rule, the same on every hub: the live active hubs (or, with none, the live standbys)
// rank each node by rendezvous hash; the top one is where the node should be.
//  - Nobody serves it, or its hub is dead (Last Will, heartbeat stale): the hub that should
//    have it claims it (epoch + 1).
//  - Its hub is alive but another should have it (a hub joined, the primary came back, its
//    own hub drains): its own hub hands it over, once the node is idle: no turn is cut.
// Only one hub writes in either case, so two hubs never race for a node; a hub serves a node
// only once the broker echoes its write back (the retained value is the truth).
import { createHash } from 'node:crypto'
import type { Feature, Handlers, HubState, Logger, Payload } from '@mirrormesh/broker'
import type { HubConfig } from '../config.js'
import type { MqttFeature } from './mqtt.js'

export type HubRole = 'solo' | 'active' | 'standby'
export interface LiveHub { id: string; role: HubRole | undefined; eligible: boolean }
type Assign = Payload<'nodeAssign'>

/** Rendezvous (highest random weight) hash: moving a hub in or out moves only its share of nodes. */
export function rendezvous(node: string, hubs: readonly string[]): string | undefined {
  let best: string | undefined
  let bestW = ''
  for (const h of hubs) {
    const w = createHash('sha256').update(`${node}\n${h}`).digest('hex')
    if (best === undefined || w > bestW || (w === bestW && h < best)) [best, bestW] = [h, w]
  }
  return best
}

/** The hub a node should be on: among eligible (online) hubs, actives first; standbys only without one. */
export function desiredHub(node: string, live: readonly LiveHub[]): string | undefined {
  const eligible = live.filter((h) => h.eligible)
  const active = eligible.filter((h) => h.role !== 'standby')
  return rendezvous(node, (active.length ? active : eligible).map((h) => h.id))
}

interface Peer { status: HubState | 'unknown'; role: HubRole | undefined; beatAt: number | null }

export interface AssignmentEvents {
  /** This hub now serves `node` (confirmed by the broker's echo); `from` is the previous hub. */
  gained(node: string, from: string | undefined, fromAlive: boolean): void
}

export class AssignmentFeature implements Feature {
  readonly name = 'assignment'
  readonly handlers: Handlers = {
    hubStatus: (m) => { this.peer(m.params.hub!).status = m.data },
    hubHeartbeat: (m) => { const p = this.peer(m.params.hub!); p.beatAt = performance.now(); p.role = m.data.role },
    nodeStatus: (m) => { this.nodes.set(m.params.node!, m.data === 'online'); this.evaluateSoon() },
    nodeAssign: (m) => this.onAssign(m.params.node!, m.data),
  }
  private readonly peers = new Map<string, Peer>()
  private readonly nodes = new Map<string, boolean>()
  private readonly assigned = new Map<string, Assign>()
  /** Writes not yet echoed: node → epoch, with when it was sent. */
  private readonly pending = new Map<string, { epoch: number; at: number }>()
  private timer: NodeJS.Timeout | undefined
  private soon: NodeJS.Immediate | undefined
  private startedAt = 0

  constructor(
    private readonly config: HubConfig,
    private readonly mqtt: MqttFeature,
    /** Whether this hub has nothing running for the node (no turn, no audio just now). */
    private readonly idle: (node: string) => boolean,
    /** This hub's own status ('draining' hands every node over). */
    private readonly selfState: () => HubState,
    private readonly events: AssignmentEvents,
    private readonly log: Logger,
  ) {}

  get self(): string { return this.config.hubId }

  /** Whether this hub should process the node's audio and requests now. */
  serves(node: string): boolean {
    return this.assigned.get(node)?.hub === this.self
  }

  /** node → hub, as the broker holds it (for /api and tests). */
  view(): Record<string, { hub: string; epoch: number }> {
    return Object.fromEntries([...this.assigned].map(([n, a]) => [n, { hub: a.hub, epoch: a.epoch }]))
  }

  start(): void {
    this.startedAt = performance.now()
    // Often enough that a takeover follows a stale heartbeat within a few hundred ms.
    this.timer = setInterval(() => this.evaluate(), 200)
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer)
    if (this.soon) clearImmediate(this.soon)
  }

  private peer(id: string): Peer {
    let p = this.peers.get(id)
    if (!p) this.peers.set(id, p = { status: 'unknown', role: undefined, beatAt: null })
    return p
  }

  private onAssign(node: string, a: Assign): void {
    const prev = this.assigned.get(node)
    this.assigned.set(node, a)
    if (this.pending.get(node)?.epoch === a.epoch) this.pending.delete(node)
    if (a.hub === this.self && prev?.hub !== this.self) {
      const fromAlive = prev !== undefined && this.alive(prev.hub)
      this.log.info({ node, from: prev?.hub ?? null, epoch: a.epoch }, 'now serving node')
      this.events.gained(node, prev?.hub, fromAlive)
    } else if (prev?.hub === this.self && a.hub !== this.self) {
      this.log.info({ node, to: a.hub, epoch: a.epoch }, 'node handed to another hub')
    }
    this.evaluateSoon()
  }

  /** Alive: online or draining, heartbeat within HUB_PEER_STALE_MS. Ourselves: connected. */
  private alive(id: string): boolean {
    if (id === this.self) return this.mqtt.connected
    const p = this.peers.get(id)
    return p !== undefined && (p.status === 'online' || p.status === 'draining') &&
      p.beatAt !== null && performance.now() - p.beatAt <= this.config.hubPeerStaleMs
  }

  live(): LiveHub[] {
    const out: LiveHub[] = []
    if (this.mqtt.connected) out.push({ id: this.self, role: this.config.hubRole, eligible: this.selfState() === 'online' })
    for (const [id, p] of this.peers) {
      if (id !== this.self && this.alive(id)) out.push({ id, role: p.role, eligible: p.status === 'online' })
    }
    return out
  }

  private evaluateSoon(): void {
    this.soon ??= setImmediate(() => { this.soon = undefined; this.evaluate() })
  }

  private evaluate(): void {
    if (!this.mqtt.connected || !this.mqtt.subscribed) return
    // Learn who else is alive (a heartbeat period or so) before claiming anything.
    if (performance.now() - this.startedAt < this.config.hubPeerStaleMs) return
    const live = this.live()
    for (const [node, online] of this.nodes) if (online) this.decide(node, live)
  }

  private decide(node: string, live: LiveHub[]): void {
    const want = desiredHub(node, live)
    if (want === undefined) return
    const cur = this.assigned.get(node)
    const p = this.pending.get(node)
    if (p && performance.now() - p.at < 2000) return // our write is on its way
    if (cur === undefined || (cur.hub !== this.self && !this.alive(cur.hub))) {
      if (want === this.self) this.write(node, (cur?.epoch ?? 0) + 1, this.self, cur ? `${cur.hub} is gone` : 'unassigned')
    } else if (cur.hub === this.self && want !== this.self && this.idle(node)) {
      this.write(node, cur.epoch + 1, want, 'hand over (idle)')
    }
  }

  private write(node: string, epoch: number, hub: string, why: string): void {
    this.pending.set(node, { epoch, at: performance.now() })
    this.log.info({ node, hub, epoch, why }, hub === this.self ? 'claiming node' : 'handing node over')
    void this.mqtt.publish('nodeAssign', { node }, { v: 1, ts: Date.now(), hub, epoch })
  }
}

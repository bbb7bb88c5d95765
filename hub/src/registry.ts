// The hub's view of every node: state from retained status + heartbeat ageing.
// online: status online, fresh heartbeat, node reports mode online
// recovering: status online but no heartbeat yet, or node reports offline/recovering mode
// stale: status online but heartbeat older than nodeStaleMs
// offline: status offline (Last Will or clean stop)
import { EventEmitter } from 'node:events'
import { Gauge, Histogram, type Registry } from 'prom-client'
import { SampleRing, nodeStates, quantile, type HeartbeatStatsResponse, type Logger, type NodeHeartbeat, type NodeState, type NodeView, type Payload, type TopicName, type TopicParams } from '@mirrormesh/broker'

export { nodeStates, type NodeState, type NodeView } from '@mirrormesh/broker'

interface NodeRecord {
  id: string
  state: NodeState
  stateSince: number
  status: NodeView['status']
  hb: NodeHeartbeat | null
  hbAt: number | null
  skewMs: number | null
  presence: Payload<'nodePresence'> | null
  /** When the node last left `online` (or was first seen not online); null while online. */
  downSince: number | null
}

export interface RegistryEvents {
  state: [node: NodeView, from: NodeState | null]
}

export interface NodeRegistryOptions {
  staleMs: number
  metrics: Registry
  log: Logger
  now?: () => number
}

export class NodeRegistry extends EventEmitter<RegistryEvents> {
  private readonly nodes = new Map<string, NodeRecord>()
  /** Heartbeat delay samples (ms), sender timestamp -> registry update. */
  readonly delays = new SampleRing(65_536)
  private readonly delayHistogram: Histogram
  private readonly now: () => number
  private timer: NodeJS.Timeout | undefined

  constructor(private readonly opts: NodeRegistryOptions) {
    super()
    this.now = opts.now ?? Date.now
    const reg = opts.metrics
    const self = this
    new Gauge({ name: 'mirrormesh_nodes', help: 'Nodes known to the hub, by state', labelNames: ['state'], registers: [reg],
      collect() {
        const counts = Object.fromEntries(nodeStates.map((s) => [s, 0])) as Record<NodeState, number>
        for (const n of self.nodes.values()) counts[n.state]++
        for (const s of nodeStates) this.set({ state: s }, counts[s])
      } })
    new Gauge({ name: 'mirrormesh_node_heartbeat_age_seconds', help: 'Seconds since each node\'s last heartbeat', labelNames: ['node'], registers: [reg],
      collect() {
        this.reset()
        const now = self.now()
        for (const n of self.nodes.values()) if (n.hbAt !== null) this.set({ node: n.id }, (now - n.hbAt) / 1000)
      } })
    new Gauge({ name: 'mirrormesh_node_clock_skew_seconds', help: 'Node clock minus hub clock at the last heartbeat', labelNames: ['node'], registers: [reg],
      collect() {
        this.reset()
        for (const n of self.nodes.values()) if (n.skewMs !== null) this.set({ node: n.id }, n.skewMs / 1000)
      } })
    // For "node offline longer than N minutes" alerts: stale and offline both count as down.
    new Gauge({ name: 'mirrormesh_node_down_seconds', help: 'Seconds since each node left the online state (0 while online)', labelNames: ['node'], registers: [reg],
      collect() {
        this.reset()
        const now = self.now()
        for (const n of self.nodes.values()) this.set({ node: n.id }, n.downSince === null ? 0 : (now - n.downSince) / 1000)
      } })
    // Each node's board from its last heartbeat, for dashboards (Grafana: RSS/CPU/temperature per node).
    const fromHeartbeat = (name: string, help: string, pick: (hb: NodeHeartbeat) => number | null) =>
      new Gauge({ name, help, labelNames: ['node'], registers: [reg],
        collect() {
          this.reset()
          for (const n of self.nodes.values()) {
            const v = n.hb && n.status === 'online' ? pick(n.hb) : null
            if (v !== null) this.set({ node: n.id }, v)
          }
        } })
    fromHeartbeat('mirrormesh_node_cpu_percent', 'Each online node\'s CPU use at its last heartbeat, percent', (hb) => hb.cpuPct)
    fromHeartbeat('mirrormesh_node_temperature_celsius', 'Each online node\'s board temperature at its last heartbeat', (hb) => hb.temperatureC)
    fromHeartbeat('mirrormesh_node_rss_bytes', 'Each online node\'s agent resident memory at its last heartbeat', (hb) => hb.rssMb * 1024 * 1024)
    this.delayHistogram = new Histogram({ name: 'mirrormesh_heartbeat_delay_seconds', help: 'Delay from a node heartbeat\'s timestamp to the registry update',
      buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5], registers: [reg] })
  }

  start(): void {
    this.timer = setInterval(() => this.age(), Math.max(50, Math.min(500, this.opts.staleMs / 4)))
    this.timer.unref()
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer)
  }

  /** Feed one validated message for a node topic. */
  handle(name: TopicName, params: TopicParams, data: unknown): void {
    const id = params.node
    if (!id) return
    const rec = this.record(id)
    const now = this.now()
    switch (name) {
      case 'nodeStatus':
        rec.status = data as 'online' | 'offline'
        if (rec.status === 'online') {
          // A new session: wait for its first heartbeat.
          rec.hb = null
          rec.hbAt = null
        }
        break
      case 'nodeHeartbeat': {
        const hb = data as NodeHeartbeat
        rec.hb = hb
        rec.hbAt = now
        rec.skewMs = hb.ts - now
        const delay = Math.max(0, now - hb.ts)
        this.delays.push(delay)
        this.delayHistogram.observe(delay / 1000)
        // A heartbeat proves the node is connected even if its retained status was lost.
        if (rec.status !== 'online') rec.status = 'online'
        break
      }
      case 'nodePresence':
        rec.presence = data as Payload<'nodePresence'>
        break
      default:
        return
    }
    this.update(rec, now)
  }

  /** Forget a node that no longer exists (moved to a new id); no state event: it went offline before. */
  forget(id: string): boolean {
    return this.nodes.delete(id)
  }

  list(): NodeView[] {
    return [...this.nodes.values()].sort((a, b) => a.id.localeCompare(b.id)).map((r) => this.view(r))
  }

  get(id: string): NodeView | undefined {
    const r = this.nodes.get(id)
    return r && this.view(r)
  }

  online(): NodeView[] {
    return this.list().filter((n) => n.state === 'online')
  }

  delayStats(): HeartbeatStatsResponse {
    const v = this.delays.values()
    return { samples: v.length, total: this.delays.total, p50Ms: quantile(v, 0.5), p95Ms: quantile(v, 0.95), p99Ms: quantile(v, 0.99), maxMs: quantile(v, 1) }
  }

  private age(): void {
    const now = this.now()
    for (const rec of this.nodes.values()) this.update(rec, now)
  }

  private record(id: string): NodeRecord {
    let rec = this.nodes.get(id)
    if (!rec) {
      rec = { id, state: 'offline', stateSince: this.now(), status: 'unknown', hb: null, hbAt: null, skewMs: null, presence: null, downSince: this.now() }
      this.nodes.set(id, rec)
      this.transition(rec, this.derive(rec, this.now()), this.now(), null)
    }
    return rec
  }

  private derive(rec: NodeRecord, now: number): NodeState {
    if (rec.status !== 'online') return 'offline'
    if (rec.hbAt !== null && now - rec.hbAt > this.opts.staleMs) return 'stale'
    if (!rec.hb || rec.hb.mode !== 'online') return 'recovering'
    return 'online'
  }

  private update(rec: NodeRecord, now: number): void {
    const next = this.derive(rec, now)
    if (next !== rec.state) this.transition(rec, next, now, rec.state)
  }

  private transition(rec: NodeRecord, next: NodeState, now: number, from: NodeState | null): void {
    rec.state = next
    rec.stateSince = now
    if (next === 'online') rec.downSince = null
    else rec.downSince ??= now
    if (from !== null) this.opts.log.info({ nodeId: rec.id, from, to: next }, 'node state changed')
    this.emit('state', this.view(rec), from)
  }

  private view(r: NodeRecord): NodeView {
    const now = this.now()
    return {
      id: r.id,
      state: r.state,
      stateSince: r.stateSince,
      status: r.status,
      mode: r.hb?.mode ?? null,
      lastHeartbeatAt: r.hbAt,
      heartbeatAgeMs: r.hbAt === null ? null : now - r.hbAt,
      clockSkewMs: r.skewMs,
      seq: r.hb?.seq ?? null,
      uptimeS: r.hb?.uptimeS ?? null,
      cpuPct: r.hb?.cpuPct ?? null,
      memPct: r.hb?.memPct ?? null,
      temperatureC: r.hb?.temperatureC ?? null,
      versions: r.hb?.versions ?? {},
      room: r.hb?.room ?? null,
      presence: r.presence,
    }
  }
}
